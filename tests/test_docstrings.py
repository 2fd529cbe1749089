"""The public API's docstrings describe the signatures they sit on: every parameter documented under its own
name, no documented parameter the signature lacks, and each stated ``default=`` the real default."""

import importlib
import inspect
import re

import numpy as np
import pytest

MODULES = ["walloc_features.features", "walloc_features.quantized", "walloc_features.estimators",
           "walloc_features.evaluation", "walloc_features.codecs", "walloc_features.datasets"]  # fmt: skip
SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}$", re.M)


def public_objects():
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and not issubclass(obj, Exception) or inspect.isfunction(obj):
                yield pytest.param(obj, id=f"{module_name.rsplit('.', 1)[1]}.{name}")


def documented_parameters(doc: str) -> list:
    """``[(names, stated default or None, description)]`` from a numpydoc Parameters section, ``a, b : int`` one
    entry."""
    doc = inspect.cleandoc(doc)
    sections = {m.group(1): m.span() for m in SECTION.finditer(doc)}
    if "Parameters" not in sections:
        return []
    start = sections["Parameters"][1]
    end = min([s for s, _ in sections.values() if s > start] + [len(doc)])
    entries, held = [], ""
    for line in doc[start:end].splitlines():
        if not line or line[0] == " ":
            if entries:
                entries[-1][2].append(line.strip())
            continue
        if line.endswith(","):  # a list of names going on on the next line
            held += line + " "
            continue
        names, _, kind = (held + line).partition(" : ")
        held = ""
        default = re.search(r"default=(.+)$", kind)
        names = tuple(n.strip() for n in names.split(","))
        entries.append((names, default.group(1).strip() if default else None, []))
    return [(names, default, " ".join(lines)) for names, default, lines in entries]


def signature_parameters(obj) -> dict:
    signature = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    params = {}
    for p in signature.parameters.values():
        if p.name == "self":
            continue
        name = {p.VAR_POSITIONAL: f"*{p.name}", p.VAR_KEYWORD: f"**{p.name}"}.get(p.kind, p.name)
        params[name] = p.default
    return params


def stated_value(text: str, obj):
    """The value a ``default=`` states, read in ``obj``'s module (``COMMANDS``); ``"64 and 2"`` gives both."""
    if " and " in text:
        return tuple(stated_value(part, obj) for part in text.split(" and "))
    return eval(text, {**vars(inspect.getmodule(obj)), "np": np})


@pytest.mark.parametrize("obj", list(public_objects()))
def test_parameters_sections_match_the_signature(obj):
    entries = documented_parameters(obj.__doc__ or "")
    actual = signature_parameters(obj)
    documented = [name for names, _, _ in entries for name in names]
    if not entries and all(name.startswith("*") for name in actual):
        return  # a torch module without an __init__ of its own: nothing to describe
    assert len(set(documented)) == len(documented), f"{obj.__name__} documents a parameter twice: {documented}"
    assert set(documented) == set(actual), f"{obj.__name__}: documented {documented}, signature {list(actual)}"
    for names, text, description in entries:
        if text is None:
            same = re.match(r"As in :class:`(\w+)`, with the same defaults", description)
            if same:  # defaults stated once, on the class named (a sibling in the same subpackage)
                package = importlib.import_module(obj.__module__.rsplit(".", 1)[0])
                source = signature_parameters(getattr(package, same.group(1)))
                assert {n: actual[n] for n in names} == {n: source[n] for n in names}, f"{obj.__name__}: {names}"
                continue
            assert all(actual[n] is inspect.Parameter.empty for n in names), f"{obj.__name__}.{names}: no default="
            continue
        value = stated_value(text, obj)
        stated = value if " and " in text else (value,) * len(names)  # "a, b : int, default=64 and 2"
        real = tuple(actual[name] for name in names)
        assert real == stated, f"{obj.__name__}.{', '.join(names)}: docs say default={text}, real {real}"


def test_the_docstring_parser_reads_what_the_tests_above_rely_on():
    """The checks above cannot pass vacuously: the parser finds the parameters and defaults of a known class."""
    from walloc_features.features import DCTTransformer

    documented = {names: default for names, default, _ in documented_parameters(DCTTransformer.__doc__)}
    assert documented[("reduction",)] == "16" and documented[("keep",)] == "None"
    assert documented[("color",)] == '"ycbcr"' and len(documented) == len(signature_parameters(DCTTransformer))
    assert len(list(public_objects())) >= 40


def documented_attributes(doc: str) -> set:
    """Names of a numpydoc Attributes section (``a, b : int`` gives both)."""
    doc = inspect.cleandoc(doc)
    sections = {m.group(1): m.span() for m in SECTION.finditer(doc)}
    start = sections["Attributes"][1]
    end = min([s for s, _ in sections.values() if s > start] + [len(doc)])
    heads = [line.partition(" : ")[0] for line in doc[start:end].splitlines() if line and line[0] != " "]
    return {name.strip() for head in heads for name in head.split(",")}


def fitted_estimators():
    """Each public transformer and classifier fitted on a few samples of what it takes (EnCodec needs weights)."""
    import io

    from PIL import Image
    from sklearn.datasets import load_digits

    from walloc_features import (DCTTransformer, JPEGCoefficients, RawSignal, ResidualVQ, ResolutionReducer,
                                 WaLLoCTransformer)  # fmt: skip
    from walloc_features.estimators import CodeEmbeddingClassifier, MLPHeadClassifier, TimmClassifier
    from walloc_features.quantized import BitPlanes, Dequantize, HashedCodes, OneHotCodes, PackedCodes

    images, y = load_digits(return_X_y=True)
    images = (images[:60].reshape(60, 1, 8, 8) / 16).astype(np.float32)
    y = y[:60] % 2
    codes = np.random.default_rng(0).integers(-3, 4, (60, 2, 4, 4)).astype(np.int8)
    train = dict(max_epochs=1, early_stopping=False, random_state=0)
    yield WaLLoCTransformer(reduction=4, J=1, max_epochs=1, random_state=0).fit(images)
    for transformer in [ResolutionReducer(4), DCTTransformer(4, block_size=4), ResidualVQ(4, codebook_size=4),
                        RawSignal()]:  # fmt: skip
        yield transformer.fit(images)
    jpeg = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    yield JPEGCoefficients(keep=4).fit([jpeg.getvalue()])
    for strategy in [Dequantize(), OneHotCodes(), BitPlanes(), PackedCodes(2), HashedCodes(n_features=64)]:
        yield strategy.fit(codes)
    yield MLPHeadClassifier(hidden_layer_sizes=(4,), **train).fit(codes.reshape(60, -1), y)
    yield TimmClassifier("test_resnet", **train).fit(images, y)
    yield CodeEmbeddingClassifier(alphabet=(-3, 3), head="mlp", **train).fit(codes, y)


def test_every_fitted_attribute_is_documented():
    """What fit sets (public names ending in ``_``) is in the class's Attributes section; a documented attribute
    is set, unless its description says when it is (only then, absent, with a setting)."""
    conditional = {"feature_names_in_", "input_range_", "seen_columns_"}
    checked = 0
    for model in fitted_estimators():
        fitted = {k for k in vars(model) if k.endswith("_") and not k.startswith("_")}
        documented = documented_attributes(type(model).__doc__)
        assert fitted <= documented, f"{type(model).__name__} leaves {sorted(fitted - documented)} undocumented"
        missing = {name for name in documented - fitted if not hasattr(model, name)} - conditional
        assert not missing, f"{type(model).__name__} documents {sorted(missing)}, which fit did not set"
        checked += 1
    assert checked == 14
