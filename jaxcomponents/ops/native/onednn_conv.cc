// oneDNN convolutions for XLA:CPU, called through the XLA FFI.
//
// Four handlers, all channels-last float32 or bfloat16 with 1-3 spatial axes and
// (spatial..., in / groups, out) kernels, as XLA's grouped convolutions store them:
//   jc_onednn_conv_forward(x, kernel, bias) -> y, with an optional fused ReLU
//   jc_onednn_conv_backward_data(dy, kernel) -> dx
//   jc_onednn_conv_backward_weights(x, dy) -> (dkernel, dbias)
//   jc_onednn_conv_transpose(y, kernel, bias) -> x: the transposed convolution of the convolution x -> y
//     (oneDNN's deconvolution), plus a bias of x's channels, with an optional fused ReLU
// and jc_fusion_barrier (at the end), which needs no oneDNN, and jc_build_key, the key of the sources, oneDNN
// and jaxlib this library was built for (`jaxcomponents.ops.native` checks it on load).
// Attributes: strides, dilations (1 = none), padding_low, padding_high, groups (feature groups: 1, or the
// input channels for a depthwise convolution), relu.
// Primitives are created once per configuration and kept. XLA:CPU runs a custom call on whichever of its threads is
// free, so one primitive runs on many threads, at times at once: each run gets its scratchpad from the thread running
// it (oneDNN's own scratchpad is per thread and sized on the thread that created the primitive; run on another, a
// primitive writes past it).

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

using Dims = memory::dims;

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

memory::format_tag ActivationTag(size_t spatial) {
  switch (spatial) {
    case 1: return memory::format_tag::nwc;
    case 2: return memory::format_tag::nhwc;
    default: return memory::format_tag::ndhwc;
  }
}

// XLA's kernel layout (spatial..., in / groups, out), where output channel o belongs to group o / (out / groups).
memory::format_tag KernelTag(size_t spatial, bool grouped) {
  switch (spatial) {
    case 1: return grouped ? memory::format_tag::wigo : memory::format_tag::wio;
    case 2: return grouped ? memory::format_tag::hwigo : memory::format_tag::hwio;
    default: return grouped ? memory::format_tag::dhwigo : memory::format_tag::dhwio;
  }
}

// oneDNN's logical order: (N, C, spatial...) for activations, (O, I, spatial...) for kernels, and
// (G, O / G, I / G, spatial...) for grouped kernels.
Dims Activation(ffi::Span<const int64_t> channels_last) {
  size_t rank = channels_last.size();
  Dims dims = {channels_last[0], channels_last[rank - 1]};
  for (size_t i = 1; i + 1 < rank; ++i) dims.push_back(channels_last[i]);
  return dims;
}

Dims Kernel(ffi::Span<const int64_t> spatial_in_out, int64_t groups) {
  size_t rank = spatial_in_out.size();
  int64_t in = spatial_in_out[rank - 2], out = spatial_in_out[rank - 1];
  Dims dims = groups == 1 ? Dims{out, in} : Dims{groups, out / groups, in};
  for (size_t i = 0; i + 2 < rank; ++i) dims.push_back(spatial_in_out[i]);
  return dims;
}

Dims ToDims(ffi::Span<const int64_t> values, int64_t offset = 0) {
  Dims dims;
  for (int64_t value : values) dims.push_back(value + offset);
  return dims;
}

dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

memory::data_type DnnlType(ffi::DataType type) {
  return type == ffi::DataType::BF16 ? memory::data_type::bf16 : memory::data_type::f32;
}

struct Geometry {
  Dims x, kernel, y, strides, dilations, padding_low, padding_high;
  size_t spatial;
  int64_t groups;
  memory::data_type type;
  bool relu;

  std::string Key(const char* kind) const {
    std::ostringstream key;
    key << kind << relu << '|' << groups << '|' << static_cast<int>(type);
    for (const Dims* dims : {&x, &kernel, &y, &strides, &dilations, &padding_low, &padding_high}) {
      key << '|';
      for (int64_t v : *dims) key << v << ',';
    }
    return key.str();
  }

  memory::desc XDesc() const { return {x, type, ActivationTag(spatial)}; }
  memory::desc YDesc() const { return {y, type, ActivationTag(spatial)}; }
  memory::desc UserKernelDesc() const { return {kernel, type, KernelTag(spatial, groups > 1)}; }
  memory::desc AnyKernelDesc() const { return {kernel, type, memory::format_tag::any}; }
  memory::desc BiasDesc() const { return {{y[1]}, type, memory::format_tag::a}; }

  // ReLU after the bias, inside the primitive, when asked; the scratchpad given at each run.
  dnnl::primitive_attr Attributes() const {
    dnnl::primitive_attr attr = UserScratchpad();
    if (relu) {
      dnnl::post_ops ops;
      ops.append_eltwise(dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      attr.set_post_ops(ops);
    }
    return attr;
  }

  dnnl::convolution_forward::primitive_desc Forward() const {
    return {Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, XDesc(),
            AnyKernelDesc(), BiasDesc(), YDesc(), strides, dilations, padding_low, padding_high, Attributes()};
  }
};

Geometry MakeGeometry(const ffi::AnyBuffer& x, ffi::Span<const int64_t> kernel, ffi::Span<const int64_t> y,
                      ffi::Span<const int64_t> strides, ffi::Span<const int64_t> dilations,
                      ffi::Span<const int64_t> padding_low, ffi::Span<const int64_t> padding_high, int64_t groups,
                      bool relu) {
  return {Activation(x.dimensions()), Kernel(kernel, groups), Activation(y), ToDims(strides),
          ToDims(dilations, -1),      ToDims(padding_low),    ToDims(padding_high), x.dimensions().size() - 2,
          groups,                     DnnlType(x.element_type()), relu};
}

struct FreeMemory {
  void operator()(void* data) const { std::free(data); }
};

// This thread's scratchpad, at least `bytes` long: one buffer per thread, grown as needed (a thread runs one
// primitive at a time, to its end).
void* ThreadScratchpad(size_t bytes) {
  constexpr size_t kAlignment = 4096;
  thread_local std::unique_ptr<void, FreeMemory> buffer;
  thread_local size_t capacity = 0;
  if (bytes > capacity) {
    size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    buffer.reset();  // the old buffer goes before the new one comes
    capacity = 0;
    buffer.reset(std::aligned_alloc(kAlignment, rounded));
    if (!buffer) throw std::bad_alloc();
    capacity = rounded;
  }
  return buffer.get();
}

// Runs `primitive` (made from `pd`) on `args` and this thread's scratchpad.
void Execute(const dnnl::primitive& primitive, const dnnl::primitive_desc_base& pd, dnnl::stream& stream,
             std::unordered_map<int, memory> args) {
  memory::desc scratchpad = pd.scratchpad_desc();
  if (scratchpad.get_size() > 0) {
    args.insert({DNNL_ARG_SCRATCHPAD, memory(scratchpad, Engine(), ThreadScratchpad(scratchpad.get_size()))});
  }
  primitive.execute(stream, args);
}

// A copy of a kernel from one layout into another.
struct Reorder {
  dnnl::reorder::primitive_desc pd;
  dnnl::reorder primitive;

  void operator()(dnnl::stream& stream, memory from, memory to) const {
    Execute(primitive, pd, stream, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
  }
};

struct ForwardPlan {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward primitive;
  std::optional<Reorder> reorder_kernel;  // from or to the user's layout, when the primitive wants another
};

struct DeconvolutionPlan {
  dnnl::deconvolution_forward::primitive_desc pd;
  dnnl::deconvolution_forward primitive;
  std::optional<Reorder> reorder_kernel;  // from or to the user's layout, when the primitive wants another
};

struct BackwardDataPlan {
  dnnl::convolution_backward_data::primitive_desc pd;
  dnnl::convolution_backward_data primitive;
  std::optional<Reorder> reorder_kernel;  // from or to the user's layout, when the primitive wants another
};

struct BackwardWeightsPlan {
  dnnl::convolution_backward_weights::primitive_desc pd;
  dnnl::convolution_backward_weights primitive;
  std::optional<Reorder> reorder_kernel;  // from or to the user's layout, when the primitive wants another
};

template <typename Plan>
std::shared_ptr<Plan> Cached(const std::string& key, Plan (*make)(const Geometry&), const Geometry& geometry) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<Plan>> plans;
  std::lock_guard<std::mutex> lock(mutex);
  auto found = plans.find(key);
  if (found != plans.end()) return found->second;
  auto plan = std::make_shared<Plan>(make(geometry));
  plans.emplace(key, plan);
  return plan;
}

std::optional<Reorder> KernelReorder(const memory::desc& from, const memory::desc& to) {
  if (from == to) return std::nullopt;
  dnnl::reorder::primitive_desc pd(Engine(), from, Engine(), to, UserScratchpad());
  return Reorder{pd, dnnl::reorder(pd)};
}

// The kernel in the layout `wanted`: the user's memory itself, or a reordered copy.
memory KernelFor(memory user, const memory::desc& wanted, const std::optional<Reorder>& reorder,
                 dnnl::stream& stream) {
  if (!reorder) return user;
  memory copy(wanted, Engine());
  (*reorder)(stream, user, copy);
  return copy;
}

ForwardPlan MakeForward(const Geometry& g) {
  auto pd = g.Forward();
  return {pd, dnnl::convolution_forward(pd), KernelReorder(g.UserKernelDesc(), pd.weights_desc())};
}

// The transposed convolution of the convolution `g` (from g.x to g.y): oneDNN's deconvolution from g.y to g.x,
// whose kernel is g's with input and output swapped, (spatial..., out, in) in memory: Keras's Conv*DTranspose kernel.
memory::desc DeconvolutionKernel(const Geometry& g, memory::format_tag tag) {
  Dims dims = {g.kernel[1], g.kernel[0]};
  dims.insert(dims.end(), g.kernel.begin() + 2, g.kernel.end());
  return {dims, g.type, tag};
}

memory::format_tag DeconvolutionKernelTag(size_t spatial) {
  switch (spatial) {
    case 1: return memory::format_tag::woi;
    case 2: return memory::format_tag::hwoi;
    default: return memory::format_tag::dhwoi;
  }
}

DeconvolutionPlan MakeDeconvolution(const Geometry& g) {
  dnnl::deconvolution_forward::primitive_desc pd(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::deconvolution_direct, g.YDesc(),
      DeconvolutionKernel(g, memory::format_tag::any), memory::desc({g.x[1]}, g.type, memory::format_tag::a),
      g.XDesc(), g.strides, g.dilations, g.padding_low, g.padding_high, g.Attributes());
  return {pd, dnnl::deconvolution_forward(pd),
          KernelReorder(DeconvolutionKernel(g, DeconvolutionKernelTag(g.spatial)), pd.weights_desc())};
}

BackwardDataPlan MakeBackwardData(const Geometry& g) {
  dnnl::convolution_backward_data::primitive_desc pd(
      Engine(), dnnl::algorithm::convolution_direct, g.XDesc(), g.AnyKernelDesc(), g.YDesc(), g.strides,
      g.dilations, g.padding_low, g.padding_high, g.Forward(), UserScratchpad());
  return {pd, dnnl::convolution_backward_data(pd), KernelReorder(g.UserKernelDesc(), pd.weights_desc())};
}

BackwardWeightsPlan MakeBackwardWeights(const Geometry& g) {
  dnnl::convolution_backward_weights::primitive_desc pd(
      Engine(), dnnl::algorithm::convolution_direct, g.XDesc(), g.AnyKernelDesc(), g.BiasDesc(), g.YDesc(),
      g.strides, g.dilations, g.padding_low, g.padding_high, g.Forward(), UserScratchpad());
  return {pd, dnnl::convolution_backward_weights(pd), KernelReorder(pd.diff_weights_desc(), g.UserKernelDesc())};
}

memory Wrap(const memory::desc& desc, const void* data) {
  return memory(desc, Engine(), const_cast<void*>(data));
}

// Runs `body(stream)` to completion; oneDNN's errors become XLA errors.
template <typename Body>
ffi::Error Run(Body body) {
  try {
    dnnl::stream stream(Engine());
    body(stream);
    stream.wait();
    return ffi::Error::Success();
  } catch (const dnnl::error& error) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN: ") + error.what());
  } catch (const std::bad_alloc&) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted, "out of memory for a oneDNN convolution");
  }
}

ffi::Error ForwardImpl(ffi::AnyBuffer x, ffi::AnyBuffer kernel, ffi::AnyBuffer bias,
                       ffi::Result<ffi::AnyBuffer> y, ffi::Span<const int64_t> strides,
                       ffi::Span<const int64_t> dilations, ffi::Span<const int64_t> padding_low,
                       ffi::Span<const int64_t> padding_high, int64_t groups, bool relu) {
  return Run([&](dnnl::stream& stream) {
    Geometry g = MakeGeometry(x, kernel.dimensions(), y->dimensions(), strides, dilations, padding_low,
                              padding_high, groups, relu);
    auto plan = Cached<ForwardPlan>(g.Key("forward"), MakeForward, g);
    memory weights = KernelFor(Wrap(g.UserKernelDesc(), kernel.untyped_data()), plan->pd.weights_desc(),
                               plan->reorder_kernel, stream);
    Execute(plan->primitive, plan->pd, stream, {{DNNL_ARG_SRC, Wrap(g.XDesc(), x.untyped_data())},
                                                {DNNL_ARG_WEIGHTS, weights},
                                                {DNNL_ARG_BIAS, Wrap(g.BiasDesc(), bias.untyped_data())},
                                                {DNNL_ARG_DST, Wrap(g.YDesc(), y->untyped_data())}});
  });
}

// x: the transposed convolution's input (the output of the convolution it transposes), y: its output.
ffi::Error DeconvolutionImpl(ffi::AnyBuffer x, ffi::AnyBuffer kernel, ffi::AnyBuffer bias,
                             ffi::Result<ffi::AnyBuffer> y, ffi::Span<const int64_t> strides,
                             ffi::Span<const int64_t> dilations, ffi::Span<const int64_t> padding_low,
                             ffi::Span<const int64_t> padding_high, int64_t groups, bool relu) {
  if (groups != 1) return ffi::Error(ffi::ErrorCode::kInvalidArgument, "grouped transposed convolutions");
  return Run([&](dnnl::stream& stream) {
    Geometry g = MakeGeometry(*y, kernel.dimensions(), x.dimensions(), strides, dilations, padding_low,
                              padding_high, groups, relu);
    auto plan = Cached<DeconvolutionPlan>(g.Key("deconvolution"), MakeDeconvolution, g);
    memory user = Wrap(DeconvolutionKernel(g, DeconvolutionKernelTag(g.spatial)), kernel.untyped_data());
    memory weights = KernelFor(user, plan->pd.weights_desc(), plan->reorder_kernel, stream);
    Execute(plan->primitive, plan->pd, stream, {{DNNL_ARG_SRC, Wrap(g.YDesc(), x.untyped_data())},
                                                {DNNL_ARG_WEIGHTS, weights},
                                                {DNNL_ARG_BIAS, Wrap(plan->pd.bias_desc(), bias.untyped_data())},
                                                {DNNL_ARG_DST, Wrap(g.XDesc(), y->untyped_data())}});
  });
}

ffi::Error BackwardDataImpl(ffi::AnyBuffer dy, ffi::AnyBuffer kernel, ffi::Result<ffi::AnyBuffer> dx,
                            ffi::Span<const int64_t> strides, ffi::Span<const int64_t> dilations,
                            ffi::Span<const int64_t> padding_low, ffi::Span<const int64_t> padding_high,
                            int64_t groups) {
  return Run([&](dnnl::stream& stream) {
    Geometry g = MakeGeometry(*dx, kernel.dimensions(), dy.dimensions(), strides, dilations, padding_low,
                              padding_high, groups, false);
    auto plan = Cached<BackwardDataPlan>(g.Key("data"), MakeBackwardData, g);
    memory weights = KernelFor(Wrap(g.UserKernelDesc(), kernel.untyped_data()), plan->pd.weights_desc(),
                               plan->reorder_kernel, stream);
    Execute(plan->primitive, plan->pd, stream, {{DNNL_ARG_DIFF_DST, Wrap(g.YDesc(), dy.untyped_data())},
                                                {DNNL_ARG_WEIGHTS, weights},
                                                {DNNL_ARG_DIFF_SRC, Wrap(g.XDesc(), dx->untyped_data())}});
  });
}

ffi::Error BackwardWeightsImpl(ffi::AnyBuffer x, ffi::AnyBuffer dy, ffi::Result<ffi::AnyBuffer> dkernel,
                               ffi::Result<ffi::AnyBuffer> dbias, ffi::Span<const int64_t> strides,
                               ffi::Span<const int64_t> dilations, ffi::Span<const int64_t> padding_low,
                               ffi::Span<const int64_t> padding_high, int64_t groups) {
  return Run([&](dnnl::stream& stream) {
    Geometry g = MakeGeometry(x, dkernel->dimensions(), dy.dimensions(), strides, dilations, padding_low,
                              padding_high, groups, false);
    auto plan = Cached<BackwardWeightsPlan>(g.Key("weights"), MakeBackwardWeights, g);
    memory user = Wrap(g.UserKernelDesc(), dkernel->untyped_data());
    memory weights = plan->reorder_kernel ? memory(plan->pd.diff_weights_desc(), Engine()) : user;
    Execute(plan->primitive, plan->pd, stream, {{DNNL_ARG_SRC, Wrap(g.XDesc(), x.untyped_data())},
                                                {DNNL_ARG_DIFF_DST, Wrap(g.YDesc(), dy.untyped_data())},
                                                {DNNL_ARG_DIFF_WEIGHTS, weights},
                                                {DNNL_ARG_DIFF_BIAS, Wrap(g.BiasDesc(), dbias->untyped_data())}});
    if (plan->reorder_kernel) (*plan->reorder_kernel)(stream, weights, user);
  });
}

}  // namespace

#define JC_GEOMETRY_ATTRS                              \
  .Attr<ffi::Span<const int64_t>>("strides")           \
      .Attr<ffi::Span<const int64_t>>("dilations")     \
      .Attr<ffi::Span<const int64_t>>("padding_low")   \
      .Attr<ffi::Span<const int64_t>>("padding_high")  \
      .Attr<int64_t>("groups")

XLA_FFI_DEFINE_HANDLER_SYMBOL(jc_onednn_conv_forward, ForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>() JC_GEOMETRY_ATTRS.Attr<bool>("relu"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(jc_onednn_conv_transpose, DeconvolutionImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>() JC_GEOMETRY_ATTRS.Attr<bool>("relu"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(jc_onednn_conv_backward_data, BackwardDataImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>() JC_GEOMETRY_ATTRS);

XLA_FFI_DEFINE_HANDLER_SYMBOL(jc_onednn_conv_backward_weights, BackwardWeightsImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>() JC_GEOMETRY_ATTRS);

// A fusion barrier: its output aliases its input, so it computes nothing, but XLA:CPU must compute the input
// into memory first instead of recomputing it inside each consumer (`jaxcomponents.ops.barrier.materialized`).
XLA_FFI_DEFINE_HANDLER_SYMBOL(jc_fusion_barrier, [](ffi::AnyBuffer, ffi::Result<ffi::AnyBuffer>) {
  return ffi::Error::Success();
}, ffi::Ffi::Bind().Arg<ffi::AnyBuffer>().Ret<ffi::AnyBuffer>());

#ifndef JC_BUILD_KEY
#define JC_BUILD_KEY "unknown"
#endif

extern "C" const char* jc_build_key() { return JC_BUILD_KEY; }
