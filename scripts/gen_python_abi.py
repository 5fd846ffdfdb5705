#!/usr/bin/env python3
"""Generates python/rmsfuse/_abi.py from the C headers (one copy of the ABI tables).

usage: gen_python_abi.py [OUT]           write OUT (default python/rmsfuse/_abi.py)
       gen_python_abi.py --check [OUT]   regenerate in memory and compare with OUT:
                                         exit 0 identical, 1 different (prints a diff)

What it reads from include/ (the headers are the one source of truth; the
Python package keeps no hand-written copy of any of this):

* rmsfuse_common.h: the version macros, RMSFUSE_STATUS_TABLE (name, value,
  text), the flag bits (#define RMSFUSE_<NAME> (1u << k) with their comments);
  the storage types (every RMSFUSE_<TYPE> the comments of rmsfuse_storage's
  fields param, grad and state name, which are also the types each kind of
  array may have), RMSFUSE_Q8_BLOCK and the rmsfuse_storage.flags bits;
* every header: each RMSFUSE_API prototype, turned into a ctypes signature
  (restype, argtypes); each `typedef struct ... { ... } name;`, turned into a
  ctypes.Structure with the same fields in the same order (a field `T *x[k]`
  is an array of k pointers); typedef aliases;
* each rule header rmsfuse_<rule>.h: its flag mask RMSFUSE_<RULE>_FLAGS, its
  config and tensor structs, its presets (functions returning the config from
  a double lr, with the comment above them), and its arrays: the tensor
  struct's pointer fields, `const` ones read only.

It checks the conventions the binding relies on and fails loudly when a
header departs from them: each rule has step, check, step_multi, check_multi,
check_config, plan, step_ex, grad_sumsq, step_typed, check_typed and
plan_typed; step's and check's array parameters are the tensor struct's fields
in order; the tensor struct holds only pointers and a size_t; the typed calls
take (cfg, storage, tensors, count, ...) and rmsfuse_typed_tensor has room in
state[] and scale[] for every rule's state arrays (in the tensor struct's
order after param and grad).
Pure Python, standard library only: it never loads the C library.
"""

import difflib
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE = os.path.join(REPO, "include")
DEFAULT_OUT = os.path.join(REPO, "python", "rmsfuse", "_abi.py")
RULE_FUNCS = ("step", "check", "step_multi", "check_multi", "check_config", "plan", "step_ex", "grad_sumsq",
              "step_typed", "check_typed", "plan_typed")
# The parameters of the typed calls of every rule (rmsfuse_common.h, "storage types").
TYPED_PARAMS = {"step_typed": ["cfg", "storage", "tensors", "count", "opt", "info"],
                "check_typed": ["cfg", "storage", "tensors", "count"],
                "plan_typed": ["cfg", "storage", "tensors", "count", "plan"]}
# The fields of the typed structs the binding fills (rmsfuse_common.h).
STORAGE_FIELDS = ["param", "grad", "state", "flags", "seed", "step"]
TYPED_TENSOR_FIELDS = ["param", "param_extra", "grad", "state", "scale", "n", "stream"]

# C scalar types -> ctypes names (pointers are handled apart).
SCALARS = {"double": "ctypes.c_double", "long long": "ctypes.c_longlong", "unsigned long long": "ctypes.c_ulonglong",
           "unsigned": "ctypes.c_uint",
           "unsigned int": "ctypes.c_uint", "int": "ctypes.c_int", "size_t": "ctypes.c_size_t", "void": "None"}


class HeaderError(Exception):
    pass


def read(name):
    with open(os.path.join(INCLUDE, name)) as f:
        return f.read()


def squash(text):
    """A C comment's text on one line."""
    text = re.sub(r"^\s*\*\s?", "", text, flags=re.M)
    return " ".join(text.split())


def strip_comments(text):
    return re.sub(r"/\*.*?\*/", " ", text, flags=re.S)


def parse_status(common):
    m = re.search(r"#define RMSFUSE_STATUS_TABLE\(X\)(.*?)\n\s*\n", common, re.S)
    if not m:
        raise HeaderError("rmsfuse_common.h: RMSFUSE_STATUS_TABLE not found")
    rows = re.findall(r'X\((RMSFUSE_\w+),\s*(-?\d+),\s*"((?:[^"\\]|\\.)*)"\)', m.group(1))
    if not rows or rows[0][:2] != ("RMSFUSE_OK", "0"):
        raise HeaderError("rmsfuse_common.h: RMSFUSE_STATUS_TABLE must start with RMSFUSE_OK, 0")
    out = [(n, int(v), t) for n, v, t in rows]
    if len({v for _, v, _ in out}) != len(out):
        raise HeaderError("rmsfuse_common.h: two status codes share a value")
    return out


def parse_version(common):
    v = {k: int(x) for k, x in re.findall(r"#define RMSFUSE_VERSION_(MAJOR|MINOR|PATCH) (\d+)", common)}
    return v["MAJOR"], v["MINOR"], v["PATCH"]


def parse_flags(common):
    """[(NAME, value, comment)] for every #define RMSFUSE_NAME (1u << k) /* ... */."""
    out = []
    for name, one, shift, comment in re.findall(
            r"#define RMSFUSE_(\w+)\s+\((\d+)u?\s*<<\s*(\d+)\)\s*/\*(.*?)\*/", common, re.S):
        out.append((name, int(one) << int(shift), squash(comment)))
    if len({v for _, v, _ in out}) != len(out):
        raise HeaderError("rmsfuse_common.h: two flags share a bit")
    return out


def parse_grad_flags(common):
    """[(name without RMSFUSE_, value)] of the rmsfuse_grad_options.flags bits, and RMSFUSE_NORM_BLOCK."""
    m = re.search(r"/\* rmsfuse_grad_options\.flags \*/\n((?:#define[^\n]*\n)+)", common)
    if not m:
        raise HeaderError("rmsfuse_common.h: the rmsfuse_grad_options.flags defines not found")
    bits = [(n, int(v)) for n, v in re.findall(r"#define RMSFUSE_(\w+)\s+(\d+)u", m.group(1))]
    block = re.search(r"#define RMSFUSE_NORM_BLOCK (\d+)u", common)
    if not bits or not block:
        raise HeaderError("rmsfuse_common.h: no gradient option flags or RMSFUSE_NORM_BLOCK")
    return bits, int(block.group(1))


def parse_storage(common):
    """The storage types: ({NAME: value}, {field: (NAME, ...)}, Q8 block, [(flag, value, comment)]).

    The types are those the comments of rmsfuse_storage's param, grad and state fields name
    (RMSFUSE_F32, _BF16, ...): what each kind of array may be; their values are their #defines."""
    m = re.search(r"typedef struct rmsfuse_storage \{(.*?)\} rmsfuse_storage;", common, re.S)
    if not m:
        raise HeaderError("rmsfuse_common.h: struct rmsfuse_storage not found")
    allowed = {}
    for field in ("param", "grad", "state"):
        f = re.search(r"\bunsigned\s+" + field + r"\s*;\s*/\*(.*?)\*/", m.group(1), re.S)
        names = re.findall(r"(?:\bRMSFUSE|(?<![A-Za-z0-9]))_([A-Z][A-Z0-9_]*[A-Z0-9])", f.group(1)) if f else []
        if not names:
            raise HeaderError(f"rmsfuse_common.h: rmsfuse_storage.{field}'s comment names no storage type")
        allowed[field] = tuple(names)
    types = {}
    for name in sorted({n for names in allowed.values() for n in names}):
        d = re.search(r"#define RMSFUSE_" + name + r"\s+(\d+)u?\s*\n", common)
        if not d:
            raise HeaderError(f"rmsfuse_common.h: storage type RMSFUSE_{name} is not #defined as a number")
        types[name] = int(d.group(1))
    if len(set(types.values())) != len(types):
        raise HeaderError("rmsfuse_common.h: two storage types share a value")
    types = dict(sorted(types.items(), key=lambda kv: kv[1]))
    block = re.search(r"#define RMSFUSE_Q8_BLOCK (\d+)u", common)
    if not block:
        raise HeaderError("rmsfuse_common.h: RMSFUSE_Q8_BLOCK not found")
    fm = re.search(r"/\* rmsfuse_storage\.flags \*/\n(.*?)\n\s*\n", common, re.S)  # up to a blank line
    if not fm:
        raise HeaderError("rmsfuse_common.h: the rmsfuse_storage.flags defines not found")
    flags = [(n, int(v), squash(c)) for n, v, c in
             re.findall(r"#define RMSFUSE_(\w+)\s+(\d+)u\s*/\*(.*?)\*/", fm.group(1), re.S)]
    if not flags or len(flags) != fm.group(1).count("#define") or len({v for _, v, _ in flags}) != len(flags):
        raise HeaderError("rmsfuse_common.h: the rmsfuse_storage.flags bits must be #define RMSFUSE_<NAME> <n>u "
                          "/* comment */ lines, each of its own value")
    return types, allowed, int(block.group(1)), flags


def eval_mask(expr, values, where):
    expr = expr.replace("\\\n", " ")
    names = re.findall(r"RMSFUSE_(\w+)", expr)
    rest = re.sub(r"RMSFUSE_\w+|[()|\s]", "", expr)
    if rest:
        raise HeaderError(f"{where}: cannot evaluate flag mask {expr.strip()!r}")
    v = 0
    for n in names:
        if n not in values:
            raise HeaderError(f"{where}: unknown flag RMSFUSE_{n}")
        v |= values[n]
    return v


def parse_masks(text, values, where):
    """{NAME: value} of every #define RMSFUSE_<X>_FLAGS mask (line continuations included)."""
    out = {}
    for name, expr in re.findall(r"#define RMSFUSE_(\w+_FLAGS)\s+((?:[^\n]*\\\n)*[^\n]*)", text):
        out[name] = eval_mask(strip_comments(expr), dict(values, **out), where)  # a mask may name a mask
    return out


def c_field_type(decl, where):
    """'const float *grad' -> ('grad', 'ctypes.c_void_p', 'const float *');
    'void *state[4]' -> ('state', 'ctypes.c_void_p * 4', 'void *[4]')."""
    m = re.match(r"^(.*?)(\w+)\s*(?:\[\s*(\d+)\s*\])?$", decl.strip(), re.S)
    if not m:
        raise HeaderError(f"{where}: cannot parse field {decl!r}")
    ctype, name, count = " ".join(m.group(1).split()), m.group(2), m.group(3)
    if "*" in ctype:
        t = "ctypes.c_void_p"
    elif ctype in SCALARS and ctype != "void":
        t = SCALARS[ctype]
    else:
        raise HeaderError(f"{where}: field {name} has an unsupported type {ctype!r}")
    if count is None:
        return name, t, ctype
    if int(count) < 1:
        raise HeaderError(f"{where}: field {name} is an array of {count}")
    return name, f"{t} * {int(count)}", f"{ctype}[{int(count)}]"


def parse_structs(text, where):
    """{c_name: [(field, ctypes, c_type)]} and {alias: c_name}."""
    structs = {}
    for tag, body, name in re.findall(r"typedef struct (\w+) \{(.*?)\} (\w+);", text, re.S):
        if tag != name:
            raise HeaderError(f"{where}: struct tag {tag} differs from its typedef {name}")
        decls = [d for d in strip_comments(body).split(";") if d.strip()]
        structs[name] = [c_field_type(d, f"{where} {name}") for d in decls]
    aliases = dict((a, b) for b, a in re.findall(r"typedef (rmsfuse_\w+) (rmsfuse_\w+);", text))
    return structs, aliases


def ctype_of(c, structs, aliases, where):
    """A C type in a prototype -> a ctypes expression (as text)."""
    c = " ".join(c.replace("*", " * ").split()).replace(" *", "*")
    base = c.replace("const ", "").replace(" const", "").strip()
    if base in ("char*",):
        return "ctypes.c_char_p"
    if base == "char**" or c == "const char* const*":
        return "ctypes.POINTER(ctypes.c_char_p)"
    if base.endswith("*"):
        target = base[:-1].strip()
        target = aliases.get(target, target)
        if target in structs and target.endswith("_config"):
            return f"ctypes.POINTER({target})"
        if base.endswith("**"):
            return "ctypes.POINTER(ctypes.c_void_p)"
        return "ctypes.c_void_p"
    base = aliases.get(base, base)
    if base in structs:
        return base
    if base in SCALARS:
        return SCALARS[base]
    raise HeaderError(f"{where}: unsupported type {c!r}")


def split_params(params):
    """Top-level comma split (a function-pointer parameter has commas inside parentheses)."""
    out, depth, cur = [], 0, ""
    for ch in params:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip():
        out.append(cur)
    return [p.strip() for p in out]


def parse_prototypes(text, structs, aliases, where):
    """[(name, restype, [argtypes], [param names], comment above)] of every RMSFUSE_API function."""
    out = []
    pattern = re.compile(r"(?:/\*((?:(?!\*/).)*)\*/\s*)?RMSFUSE_API\s+([^;{]*?)\b(rmsfuse_\w+)\s*\(([^;]*?)\)\s*;",
                         re.S)
    for comment, ret, name, params in pattern.findall(text):
        params = " ".join(params.split())
        args, names = [], []
        if params != "void":
            for p in split_params(params):
                if "(*" in p:  # a function pointer
                    args.append("ctypes.c_void_p")
                    names.append(re.search(r"\(\*\s*(\w+)\)", p).group(1))
                    continue
                m = re.match(r"^(.*?)(\w+)$", p)
                args.append(ctype_of(m.group(1), structs, aliases, f"{where} {name}"))
                names.append(m.group(2))
        out.append((name, ctype_of(ret, structs, aliases, f"{where} {name}"), args, names,
                    squash(comment) if comment else ""))
    return out


def collect():
    common = read("rmsfuse_common.h")
    version = parse_version(common)
    status = parse_status(common)
    flags = parse_flags(common)
    grad_flags, norm_block = parse_grad_flags(common)
    storage_types, storage_allowed, q8_block, storage_flags = parse_storage(common)
    values = {n: v for n, v, _ in flags}
    structs, aliases, functions, rules, masks = {}, {}, {}, {}, {}
    headers = sorted(f for f in os.listdir(INCLUDE) if re.match(r"rmsfuse\w*\.h$", f))
    texts = {h: read(h) for h in headers}
    for h, text in texts.items():
        s, a = parse_structs(text, h)
        structs.update(s)
        aliases.update(a)
    for h, text in texts.items():
        masks.update(parse_masks(text, values, h))
        for name, ret, args, names, comment in parse_prototypes(text, structs, aliases, h):
            functions[name] = (ret, args, names, comment, "pool" if h == "rmsfuse_pool.h" else "core")
    for name, want in (("rmsfuse_storage", STORAGE_FIELDS), ("rmsfuse_typed_tensor", TYPED_TENSOR_FIELDS)):
        if [f for f, _, _ in structs.get(name, ())] != want:
            raise HeaderError(f"rmsfuse_common.h: {name}'s fields are not {', '.join(want)}")
    typed = {f: (t, c) for f, t, c in structs["rmsfuse_typed_tensor"]}
    slots = re.fullmatch(r"ctypes\.c_void_p \* (\d+)", typed["state"][0])
    if not slots or typed["scale"][0] != typed["state"][0]:
        raise HeaderError("rmsfuse_common.h: rmsfuse_typed_tensor's state and scale must be pointer arrays of one "
                          "length")
    typed_slots = int(slots.group(1))
    for h in headers:
        m = re.match(r"rmsfuse_(\w+)\.h$", h)
        if not m or m.group(1) in ("common", "pool"):
            continue
        rule = m.group(1)
        cfg = f"rmsfuse_{rule}_config"
        tensor = aliases.get(f"rmsfuse_{rule}_tensor", f"rmsfuse_{rule}_tensor")
        if cfg not in structs or tensor not in structs:
            raise HeaderError(f"{h}: expected {cfg} and rmsfuse_{rule}_tensor")
        fields = structs[tensor]
        if fields[-1][:2] != ("n", "ctypes.c_size_t") or any(t != "ctypes.c_void_p" for _, t, _ in fields[:-1]):
            raise HeaderError(f"{h}: {tensor} must be pointers followed by size_t n")
        arrays = [(n, not c.startswith("const")) for n, _, c in fields[:-1]]
        for fn in RULE_FUNCS:
            if f"rmsfuse_{rule}_{fn}" not in functions:
                raise HeaderError(f"{h}: rmsfuse_{rule}_{fn} is not declared")
        for fn in ("step", "check"):
            names = functions[f"rmsfuse_{rule}_{fn}"][2]
            if names != ["cfg"] + [n for n, _ in arrays] + ["n"]:
                raise HeaderError(f"{h}: rmsfuse_{rule}_{fn}'s parameters {names} are not cfg, the fields of "
                                  f"{tensor}, n")
        for fn, want in TYPED_PARAMS.items():
            names = functions[f"rmsfuse_{rule}_{fn}"][2]
            if names != want:
                raise HeaderError(f"{h}: rmsfuse_{rule}_{fn}'s parameters {names} are not {', '.join(want)}")
        if len(arrays) - 2 > typed_slots or [n for n, _ in arrays[:2]] != ["param", "grad"]:
            raise HeaderError(f"{h}: {tensor} is not param, grad and at most {typed_slots} state arrays (the "
                              f"room of rmsfuse_typed_tensor.state)")
        mask_name = f"{rule.upper()}_FLAGS"
        if mask_name not in masks:
            raise HeaderError(f"{h}: RMSFUSE_{mask_name} not defined")
        presets = []
        for name, (ret, args, _, comment, _) in functions.items():
            if ret == cfg and args == ["ctypes.c_double"]:
                family, preset = name[len("rmsfuse_"):].rsplit("_", 1)
                presets.append((family, preset, name, comment))
        rules[rule] = dict(config=cfg, tensor=tensor, arrays=arrays, flags=masks[mask_name], presets=presets)
    return dict(version=version, status=status, flags=flags, masks=masks, structs=structs, aliases=aliases,
                functions=functions, rules=rules, headers=headers, grad_flags=grad_flags, norm_block=norm_block,
                storage_types=storage_types, storage_allowed=storage_allowed, q8_block=q8_block,
                storage_flags=storage_flags, typed_slots=typed_slots)


def render(abi):
    L = ['"""The C ABI of librmsfuse for the ctypes binding: generated, do not edit.',
         "",
         "Generated by scripts/gen_python_abi.py from " + ", ".join(f"include/{h}" for h in abi["headers"]) + ".",
         "Regenerate with /usr/bin/python3 scripts/gen_python_abi.py after changing a header; the ctest",
         'python_abi_uptodate fails while this file is stale.',
         '"""',
         "",
         "import ctypes",
         "",
         f"VERSION = {abi['version']!r}",
         "",
         "# RMSFUSE_STATUS_TABLE: (name, value, text).",
         "STATUS = ("]
    L += [f"    ({n!r}, {v}, {t!r})," for n, v, t in abi["status"]]
    L += [")", "", "# Flag bits: (name without RMSFUSE_, value, the header's comment).", "FLAGS = ("]
    L += [f"    ({n!r}, 0x{v:x}, {c!r})," for n, v, c in abi["flags"]]
    L += [")", "", "# rmsfuse_grad_options.flags bits (name without RMSFUSE_, value).", "GRAD_FLAGS = {"]
    L += [f"    {n!r}: {v}," for n, v in abi["grad_flags"]]
    L += ["}", f"NORM_BLOCK = {abi['norm_block']}  # RMSFUSE_NORM_BLOCK", "",
          "# Storage types (name without RMSFUSE_, value), and the types each kind of array may have",
          "# (rmsfuse_storage's fields param, grad, state).", "STORAGE_TYPES = {"]
    L += [f"    {n!r}: {v}," for n, v in abi["storage_types"].items()]
    L += ["}", "STORAGE_ALLOWED = {"]
    L += [f"    {f!r}: {names!r}," for f, names in abi["storage_allowed"].items()]
    L += ["}", f"Q8_BLOCK = {abi['q8_block']}  # RMSFUSE_Q8_BLOCK",
          f"TYPED_SLOTS = {abi['typed_slots']}  # rmsfuse_typed_tensor: state[] and scale[] entries", "",
          "# rmsfuse_storage.flags bits: (name without RMSFUSE_, value, the header's comment).", "STORAGE_FLAGS = ("]
    L += [f"    ({n!r}, 0x{v:x}, {c!r})," for n, v, c in abi["storage_flags"]]
    L += [")", "",
          "# Flag masks (RMSFUSE_<NAME>).", "MASKS = {"]
    L += [f"    {n!r}: 0x{v:x}," for n, v in sorted(abi["masks"].items())]
    L += ["}", "", "", "# ---- structs (same fields, same order as the headers) ----"]
    for name, fields in abi["structs"].items():
        L += ["", "", f"class {name}(ctypes.Structure):", "    _fields_ = ["]
        L += [f"        ({f!r}, {t}),  # {c}" for f, t, c in fields]
        L += ["    ]"]
    L += [""]
    for alias, target in abi["aliases"].items():
        L.append(f"{alias} = {target}")
    L += ["", "", "# ---- functions: name -> (library, restype, argtypes, parameter names) ----", "FUNCTIONS = {"]
    for name, (ret, args, names, _, where) in abi["functions"].items():
        L.append(f"    {name!r}: ({where!r}, {ret}, [{', '.join(args)}], {tuple(names)!r}),")
    L += ["}", "", "", "# ---- rules: config and tensor structs, arrays (name, written), flag mask, presets ----",
          "# presets: (family, preset, function, the header's comment); AdamW presets are family 'adamw' of rule",
          "# 'adam' (the same config struct).", f"RULE_FUNCS = {RULE_FUNCS!r}  # rmsfuse_<rule>_<fn> of every rule",
          "RULES = {"]
    for rule, r in abi["rules"].items():
        L += [f"    {rule!r}: dict(", f"        config={r['config']},", f"        tensor={r['tensor']},",
              f"        arrays={tuple(r['arrays'])!r},", f"        flags=0x{r['flags']:x},", "        presets=("]
        L += [f"            {p!r}," for p in r["presets"]]
        L += ["        ),", "    ),"]
    L += ["}", ""]
    return "\n".join(L)


def main(argv):
    check = "--check" in argv
    rest = [a for a in argv if a != "--check"]
    out = rest[0] if rest else DEFAULT_OUT
    try:
        text = render(collect())
    except HeaderError as e:
        print(f"gen_python_abi.py: {e}", file=sys.stderr)
        return 2
    if check:
        try:
            with open(out) as f:
                old = f.read()
        except OSError as e:
            print(f"gen_python_abi.py: {out}: {e}", file=sys.stderr)
            return 1
        if old == text:
            print(f"gen_python_abi.py: {out} is up to date")
            return 0
        sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True), out, "generated"))
        print(f"gen_python_abi.py: {out} is stale: run scripts/gen_python_abi.py", file=sys.stderr)
        return 1
    with open(out, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
