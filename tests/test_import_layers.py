"""Arrows point down: no module of jaxcomponents imports from a layer above its own (DESIGN.md, "Layers of the house").

The import graph is read with `ast` (nothing is imported): every `import` and `from ... import` statement, at
module level or inside a function, and every `importlib.import_module("jaxcomponents...")` with a literal name.
"""

import ast
import pathlib

PACKAGE = "jaxcomponents"
ROOT = pathlib.Path(__file__).resolve().parent.parent / PACKAGE

# Floors, bottom to top, each of one or more layers side by side: a module imports from its own layer and from the
# floors below, never from a floor above or from another layer of its floor. A module belongs to the layer of its
# longest matching prefix (a prefix matches the module and its submodules; `jaxcomponents` itself, the package's
# `__init__.py`, matches only by its exact name).
FLOORS = (
    {"base": ("jaxcomponents.errors", "jaxcomponents.tree_paths", "jaxcomponents.settings",
              "jaxcomponents.deprecation", "jaxcomponents.limits", "jaxcomponents.files", "jaxcomponents.extras",
              "jaxcomponents.sharding", "jaxcomponents.variable_trees", "jaxcomponents.registry")},
    {"ops": ("jaxcomponents.ops",)},
    {"keras names": ("jaxcomponents.activations", "jaxcomponents.losses", "jaxcomponents.losses_segmentation",
                     "jaxcomponents.metrics", "jaxcomponents.metrics_segmentation", "jaxcomponents.optimizers",
                     "jaxcomponents.regularizers", "jaxcomponents.initializers")},
    {"layers": ("jaxcomponents.layers",)},
    {"models": ("jaxcomponents.models",)},
    # The Keras interop package; `summary` reads a KerasGraph; `variable_trees` are the variables it converts.
    {"keras interop": ("jaxcomponents.keras", "jaxcomponents.summary")},
    # `preprocessing` is Keras's imagenet_utils: models' `preprocess_input` and weights' `decode_predictions`.
    {"weights": ("jaxcomponents.weights", "jaxcomponents.preprocessing")},
    {"data": ("jaxcomponents.data",)},
    {"inference": ("jaxcomponents.inference",)},
    # Side by side: an exported model needs no training, and training needs no exporter. `callbacks` is Keras's
    # name for training's callbacks.
    {"training": ("jaxcomponents.training", "jaxcomponents.callbacks"), "export": ("jaxcomponents.export",)},
    {"front ends": ("jaxcomponents", "jaxcomponents.cpu", "jaxcomponents.nnx", "jaxcomponents.cli")},
)

DEPRECATED_ALIAS = "deprecated alias, removed in a later version"

# (importing module, imported module) -> why this arrow against the floors stays.
ALLOWED = {
    # Old homes of names that moved up a floor: each resolves to the new home with a DeprecationWarning.
    ("jaxcomponents.models", "jaxcomponents.weights.imagenet"): DEPRECATED_ALIAS + ": models.init_unet",
    # A public name the Keras-interop issue keeps (`models.KerasGraph`), resolved on first use, not at import.
    ("jaxcomponents.models", "jaxcomponents.keras.graph"): "public name kept: models.KerasGraph",
    ("jaxcomponents.models.unet", "jaxcomponents.weights.imagenet"): DEPRECATED_ALIAS + ": models.unet.init_unet",
}


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
  path = ROOT.parent.joinpath(*name.split("."))
  return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def layer_of(name: str) -> tuple[int, str]:
  """(floor, layer) of the module `name` (KeyError where no prefix of `FLOORS` matches it)."""
  best = None
  for floor, layers in enumerate(FLOORS):
    for layer, prefixes in layers.items():
      for prefix in prefixes:
        matches = name == prefix or (prefix != PACKAGE and name.startswith(prefix + "."))
        if matches and (best is None or len(prefix) > len(best[0])):
          best = (prefix, floor, layer)
  if best is None:
    raise KeyError(f"{name} is in no layer of FLOORS")
  return best[1:]


def points_down(module: str, imported: str) -> bool:
  """Whether `module` may import `imported`: same layer, or a floor below."""
  (floor, layer), (imported_floor, imported_layer) = layer_of(module), layer_of(imported)
  return imported_floor < floor or (imported_floor, imported_layer) == (floor, layer)


def imports_of(path: pathlib.Path):
  """Yields `(line, imported module)` for each jaxcomponents module `path` imports, anywhere in the file."""
  name = module_name(path)
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = package.split(".")[:len(package.split(".")) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
      else:
        source = node.module
      for alias in node.names:  # `from package import submodule` imports the submodule
        yield node.lineno, f"{source}.{alias.name}" if is_module(f"{source}.{alias.name}") else source
    elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
          and isinstance(node.args[0].value, str)
          and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) == "import_module"):
      yield node.lineno, node.args[0].value


def arrows_against_floors():
  """`(module, line, imported module)` for each import of a module not below the importer, in file order."""
  arrows = set()  # one `from m import a, b` is one arrow
  for path in ROOT.rglob("*.py"):
    name = module_name(path)
    for line, imported in imports_of(path):
      if (imported == PACKAGE or imported.startswith(PACKAGE + ".")) and not points_down(name, imported):
        arrows.add((name, line, imported))
  return sorted(arrows)


def describe(arrows) -> str:
  return "\n".join(f"  {module}:{line} imports {imported} ({layer_of(module)[1]} -> {layer_of(imported)[1]})"
                   for module, line, imported in arrows)


def test_every_module_is_in_a_layer():
  unplaced = []
  for name in sorted(module_name(path) for path in ROOT.rglob("*.py")):
    try:
      layer_of(name)
    except KeyError:
      unplaced.append(name)
  assert not unplaced, f"modules in no layer (add each to its layer in FLOORS): {unplaced}"


def test_imports_point_down():
  arrows = [arrow for arrow in arrows_against_floors() if arrow[::2] not in ALLOWED]
  assert not arrows, ("imports from a floor above, or from another layer of the importer's floor (move the code "
                      "down, or the import up):\n" + describe(arrows))


def test_allowed_arrows_still_exist():
  existing = {arrow[::2] for arrow in arrows_against_floors()}
  stale = sorted(set(ALLOWED) - existing)
  assert not stale, f"ALLOWED names arrows that are gone (remove them): {stale}"
