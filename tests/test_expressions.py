"""The expression language: behaviour, both spellings, limits and refusal of malicious input."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from flowcraft_core.expressions import (
    MAX_NODES,
    MAX_SOURCE_LENGTH,
    CompiledExpression,
    ExpressionError,
    compile_expression,
    evaluate_expression,
    is_truthy,
)

SCOPE: dict[str, Any] = {
    "context": {
        "order": {"total": 120.5, "currency": "EUR", "lines": [{"sku": "a", "qty": 2}]},
        "user": {"name": "Ada", "tags": ["vip", "beta"], "age": 36},
        "flag": False,
        "zero": 0,
        "empty": "",
        "i": 1,
        "key": "currency",
    },
    "result": {"ok": True, "items": [{"price": 3}, {"price": 4.5}], "count": 2, "_private": 1},
    "output": {"key with space": "spaced", "n": 7},
    "input": {"x": 10},
    "params": None,
}


def ev(source: str, scope: dict[str, Any] | None = None) -> Any:
    return evaluate_expression(source, SCOPE if scope is None else scope)


def refused(source: str, scope: dict[str, Any] | None = None) -> ExpressionError:
    """The error raised while compiling or evaluating ``source``."""
    with pytest.raises(ExpressionError) as info:
        compile_expression(source).evaluate(SCOPE if scope is None else scope)
    return info.value


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("context.order.total", 120.5),
        ("result.items[0].price", 3),
        ("result.items[-1].price", 4.5),
        ('output["key with space"]', "spaced"),
        ("output['n']", 7),
        ("input.x", 10),
        ("context.order.lines[0]['sku']", "a"),
        ("result.items[context.i].price", 4.5),
        ("context.order[context.key]", "EUR"),
        ("(context.order).currency", "EUR"),
        ("context?.order?.currency", "EUR"),
        ("result.items?.[0]?.price", 3),
        ("context.user.tags.length", 2),
        ("context.user.name.length", 3),
        ("context.user.name[0]", "A"),
        ("[10, 20, 30][1]", 20),
    ],
)
def test_paths(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "context.missing",
        "context.missing.deeper.still",
        "result.items[5]",
        "result.items[-9].price",
        "result.items['x']",
        "result.ok.nested",  # attribute of a boolean
        "context.order.total.x",  # attribute of a number
        "context.user.name.upper",  # attribute of a string
        "nosuchroot",
        "nosuchroot.a[0].b",
        "params.anything",
        "output[1]",
    ],
)
def test_missing_paths_are_none(source: str) -> None:
    assert ev(source) is None


def test_missing_compares_equal_to_null_and_undefined() -> None:
    assert ev("context.missing == null") is True
    assert ev("context.missing === undefined") is True
    assert ev("context.missing is None") is True
    assert ev("context.order is not None") is True
    assert ev("result.a.b == None") is True


def test_read_only_mappings_are_traversed() -> None:
    scope = {"context": MappingProxyType({"a": MappingProxyType({"b": [1, 2]})})}
    assert ev("context.a.b[1]", scope) == 2
    assert ev("context.a.zzz", scope) is None
    assert ev("'a' in context", scope) is True


def test_bracket_keys_follow_python_types() -> None:
    assert ev("x[0]", {"x": {"0": "string key"}}) is None
    assert ev("x['0']", {"x": {"0": "string key"}}) == "string key"
    assert ev("x[1.5]", {"x": [1, 2]}) is None
    assert "cannot use list as a key" in str(refused("context[[1]]"))


# --------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("python", "javascript", "expected"),
    [
        ("True and False", "true && false", False),
        ("True or False", "true || false", True),
        ("not True", "!true", False),
        ("None", "null", None),
        ("None", "undefined", None),
        ("1 if True else 2", "true ? 1 : 2", 1),
        ("1 if False else 2", "false ? 1 : 2", 2),
        ("context.user.age == 36", "context.user.age === 36", True),
        ("context.user.age != 36", "context.user.age !== 36", False),
        ("context.flag is False", "context.flag === false", True),
        ("context.flag is not False", "context.flag !== false", False),
    ],
)
def test_both_spellings(python: str, javascript: str, expected: Any) -> None:
    assert ev(python) == expected
    assert ev(javascript) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("7 + 2", 9),
        ("7 - 2", 5),
        ("7 * 2", 14),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("-7 % 3", 2),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("-3", -3),
        ("+3", 3),
        ("- -3", 3),
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 2", True),
        ("2 >= 3", False),
        ("'abc' < 'abd'", True),
        ("[1, 2] < [1, 3]", True),
        ("1.5 < 2", True),
        ("true + 1", 2),
        ("'ab' + 'cd'", "abcd"),
        ("[1] + [2]", [1, 2]),
        ("'ab' * 3", "ababab"),
        ("3 * 'ab'", "ababab"),
        ("[0] * 3", [0, 0, 0]),
        ("'ab' * -1", ""),
        ("context.order.total * 2 > 240", True),
    ],
)
def test_arithmetic_and_comparison(source: str, expected: Any) -> None:
    result = ev(source)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("2 * 3 % 4", 2),
        ("2 ** 3 ** 2", 512),
        ("-2 ** 2", -4),
        ("(-2) ** 2", 4),
        ("!false && false", False),
        ("!(false && false)", True),
        ("true || false && false", True),
        ("(true || false) && false", False),
        ("false or true and false", False),
        ("not 1 == 2", True),  # Python: not (1 == 2)
        ("!1 == false", True),  # JavaScript: (!1) == false
        ("1 + 1 == 2 && 3 > 2", True),
        ("1 < 2 < 3", True),  # chained like Python
        ("3 > 2 > 1", True),
        ("(3 > 2) > 1", False),  # parenthesised: True > 1
        ("1 < 3 < 2", False),
        ("true ? 1 : false ? 2 : 3", 1),
        ("false ? 1 : false ? 2 : 3", 3),
        ("1 if false else 2 if false else 3", 3),
        ("1 + 1 if true else 0", 2),
        ("context.missing ?? 'fallback'", "fallback"),
        ("context.zero ?? 'fallback'", 0),
        ("context.zero || 'fallback'", "fallback"),
    ],
)
def test_precedence(source: str, expected: Any) -> None:
    assert ev(source) == expected


def test_logical_operators_return_operands_and_short_circuit() -> None:
    assert ev("context.user.name && context.user.age") == 36
    assert ev("context.empty && 1 / context.zero") == ""
    assert ev("context.user.name || 1 / context.zero") == "Ada"
    assert ev("context.empty or 'default'") == "default"
    assert ev("context.flag and 1 / context.zero") is False
    assert ev("true ? 'yes' : 1 / context.zero") == "yes"
    assert ev("1 / context.zero if false else 'no'") == "no"
    assert ev("!context.empty") is True
    assert ev("not context.user.tags") is False


def test_membership() -> None:
    assert ev("'vip' in context.user.tags") is True
    assert ev("'admin' not in context.user.tags") is True
    assert ev("'da' in context.user.name") is True
    assert ev("'order' in context") is True
    assert ev("'nope' in context") is False
    assert ev("context.user.age in [18, 36, 65]") is True
    assert ev("2 in [1, 2.0]") is True
    assert ev("'x' in context.missing") is False  # absent data is "nothing"
    assert "needs a string on the left" in str(refused("1 in 'abc'"))
    assert "needs a list, string or object" in str(refused("1 in 5"))


def test_equality_and_strict_equality() -> None:
    assert ev("1 == 1.0") is True
    assert ev("1 === 1.0") is True
    assert ev("1 == true") is True
    assert ev("1 === true") is False
    assert ev("0 !== false") is True
    assert ev("'1' == 1") is False  # no JavaScript coercion
    assert ev("null == undefined") is True
    assert ev("null === false") is False
    assert ev("[1, 2] == [1, 2]") is True
    assert ev("[1] == [true]") is True
    assert ev("[1] === [true]") is False
    assert ev("{'a': 1} === {'a': 1.0}") is True
    assert ev("{'a': 1} === {'a': true}") is False
    assert ev("result.items == [{'price': 3}, {'price': 4.5}]") is True


def test_functions() -> None:
    assert ev("len(context.user.tags)") == 2
    assert ev("len('abc')") == 3
    assert ev("len(context.order)") == 3
    assert ev("len(result.items) > 1 && result.ok") is True
    assert ev("min(3, 1, 2)") == 1
    assert ev("max([4, 9.5, 2])") == 9.5
    assert ev("min('b', 'a')") == "a"
    assert ev("abs(-2.5)") == 2.5
    assert ev("str(42) + '!'") == "42!"
    assert ev("str(1.5)") == "1.5"
    assert ev("str(null) + str(true)") == "nulltrue"
    assert ev("str([1, {'a': false}])") == '[1,{"a":false}]'
    assert ev("int('42') + 1") == 43
    assert ev("int(3.9)") == 3
    assert ev("float('2.5') * 2") == 5.0
    assert ev("lower('AbC') + upper('x')") == "abcX"
    assert "len() needs a string, list or object, got null" in str(refused("len(context.nope)"))
    assert "min() of an empty list" in str(refused("min([])"))
    assert "all numbers or all strings" in str(refused("max(1, 'a')"))
    assert "int() cannot convert" in str(refused("int('4.5')"))
    assert "takes exactly 1 argument" in str(refused("len(1, 2)"))


def test_literals() -> None:
    assert ev("'single'") == "single"
    assert ev('"double"') == "double"
    assert ev(r"'it\'s' + " + '"\\"q\\""') == 'it\'s"q"'
    assert ev(r"'a\nb\t\\'") == "a\nb\t\\"
    assert ev(r"'\u00e9\x41'") == "éA"
    assert ev("[]") == []
    assert ev("[1, 'two', [3], null,]") == [1, "two", [3], None]
    assert ev("{'a': 1, \"b\": [input.x]}") == {"a": 1, "b": [10]}
    assert ev("{}") == {}
    assert ev("1e3") == 1000.0
    assert ev("2.5e-1") == 0.25
    assert ev(".5 + 1.") == 1.5
    assert ev("True") is True and ev("False") is False and ev("None") is None


def test_list_results_are_fresh_each_time() -> None:
    compiled = compile_expression("[1, 2]")
    first = compiled.evaluate({})
    first.append(3)
    assert compiled.evaluate({}) == [1, 2]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        (float("nan"), False),
        ("", False),
        ([], False),
        ({}, False),
        ((), False),
        (True, True),
        (1, True),
        (-0.5, True),
        ("0", True),
        ("false", True),
        ([0], True),
        ({"a": None}, True),
        (object(), True),
    ],
)
def test_is_truthy(value: Any, expected: bool) -> None:
    assert is_truthy(value) is expected


def test_conditions_use_truthiness() -> None:
    assert ev("context.user.tags ? 'tagged' : 'plain'") == "tagged"
    assert ev("[] ? 'yes' : 'no'") == "no"
    assert ev("{} || 'empty'") == "empty"
    assert ev("!!context.order") is True


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("'a' < 1", "cannot compare string and number with '<'"),
        ("context.missing > 3", "cannot compare null and number with '>'"),
        ("context.user.name + 1", "convert with str() first"),
        ("1 + null", "unsupported operand types for '+'"),
        ("'a' - 'b'", "unsupported operand types for '-'"),
        ("'%s' % 1", "unsupported operand types for '%'"),
        ("1 / 0", "division by zero"),
        ("input.x / context.zero", "division by zero"),
        ("input.x // 0", "division by zero"),
        ("input.x % 0", "modulo by zero"),
        ("-'a'", "bad operand type for unary '-'"),
        ("(-8) ** 0.5", "not a real number"),
        ("0 ** -1", "negative power"),
    ],
)
def test_runtime_errors(source: str, fragment: str) -> None:
    assert fragment in str(refused(source))


def test_runtime_error_names_the_position() -> None:
    message = str(refused("input.x > 1 && context.user.name < 5"))
    assert message == (
        "cannot compare string and number with '<' at column 34 in "
        '"input.x > 1 && context.user.name < 5"'
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("a + )", "unexpected token ')' at column 5 in \"a + )\""),
        ("", 'empty expression at column 1 in ""'),
        ("1 +", 'unexpected end of expression at column 4 in "1 +"'),
        ("1 2", "unexpected token '2' at column 3 in \"1 2\""),
        ("a ? b", "expected ':' but found end of expression at column 6 in \"a ? b\""),
        ("a if b", "expected 'else' but found end of expression at column 7"),
        ("'abc", "unterminated string at column 1"),
        (r"'\q'", "invalid escape sequence"),
        ("a = 1", "use '==' to compare"),
        ("a & b", "use '&&' or 'and'"),
        ("a | b", "use '||' or 'or'"),
        ("a @ b", "unexpected character '@' at column 3"),
        ("1abc", "invalid number"),
        ("{a: 1}", "object keys must be quoted strings"),
        ("[x for x in y]", "expected ']' but found 'for'"),
        ("a[1:2]", "expected ']' but found ':'"),
        ("1e999", "too large"),
        ("1" * 102, "integer literal is larger than 10**100"),
    ],
)
def test_syntax_errors(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(source)
    assert message in str(info.value)


def test_error_carries_source_and_column() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression("a + )")
    assert info.value.source == "a + )"
    assert info.value.column == 5
    assert isinstance(info.value, ValueError)


def test_non_string_source_is_refused() -> None:
    with pytest.raises(ExpressionError, match="must be a string"):
        compile_expression(42)  # type: ignore[arg-type]
    with pytest.raises(ExpressionError, match="must be a string"):
        compile_expression(["a"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("__import__('os')", "name '__import__' is not allowed"),
        ("__import__('os').system('id')", "name '__import__' is not allowed"),
        ("().__class__.__bases__", "unexpected token ')'"),
        ("''.__class__.__mro__", "name '__class__' is not allowed"),
        ("context.__class__", "name '__class__' is not allowed"),
        ("context.__dict__", "name '__dict__' is not allowed"),
        ("context.a__b", "name 'a__b' is not allowed"),
        ("result._private", "name '_private' is not allowed"),
        ("_", "name '_' is not allowed"),
        ("result['_private']", "key '_private' is not allowed"),
        ("context['__cla' + 'ss__']", "key '__class__' is not allowed"),
        ("open('x')", "function 'open' is not allowed"),
        ("eval('1')", "function 'eval' is not allowed"),
        ("getattr(context, 'x')", "function 'getattr' is not allowed"),
        ("context('x')", "function 'context' is not allowed"),
        ("x.lower()", "method calls are not allowed ('.lower()')"),
        ("context.user.name.upper()", "method calls are not allowed"),
        ("context['keys']()", "method calls are not allowed"),
        ("(context)()", "function 'context' is not allowed"),
        ("len(x)(1)", "only these functions can be called"),
        ("'abc'(1)", "only these functions can be called"),
        ("lambda: 1", "'lambda' is not supported"),
        ("[x for x in context]", "expected ']' but found 'for'"),
        ("import os", "'import' is not supported"),
        ("9 ** 9 ** 9", "exponent 387420489 is larger than 100"),
        ("10 ** 1000", "exponent 1000 is larger than 100"),
        ("(10 ** 60) ** 2", "integer result is larger than 10**100"),
        ("10 ** 100 * 10", "integer result is larger than 10**100"),
        ("1e300 ** 2", "too large"),
        ("'a' * 10**9", "the limit is 100000"),
        ("[1, 2] * 60000", "the limit is 100000"),
        ("'' * 10**9", "the limit is 100000"),
        ("str([[0] * 100000] * 100000)", "longer than 100000 characters"),
        ("(" * 1000 + "1" + ")" * 1000, "expression is too long"),
        ("(" * 60 + "1" + ")" * 60, "nested too deeply"),
        ("[" * 60 + "]" * 60, "nested too deeply"),
        ("-" * 60 + "1", "nested too deeply"),
        ("not " * 60 + "1", "nested too deeply"),
        ("!" * 60 + "1", "nested too deeply"),
        ("2 ** " * 60 + "1", "nested too deeply"),
        ("a ? " * 60 + "1" + " : 2" * 60, "nested too deeply"),
        ("1" + "+1" * MAX_NODES, f"more than {MAX_NODES} nodes"),
        ("(" * 1000 + "1", "nested too deeply"),
        ("x" * (MAX_SOURCE_LENGTH + 1), "expression is too long"),
    ],
)
def test_hostile_input_is_refused(source: str, fragment: str) -> None:
    assert fragment in str(refused(source))


def test_limits_refused_at_run_time_too() -> None:
    scope = {"n": 10**9, "e": 1000, "big": 10**60, "s": "ab"}
    assert "the limit is 100000" in str(refused("s * n", scope))
    assert "exponent 1000 is larger than 100" in str(refused("2 ** e", scope))
    assert "larger than 10**100" in str(refused("big * big", scope))
    assert "larger than 10**100" in str(refused("big ** 2", scope))


def test_limits_leave_room_for_real_expressions() -> None:
    assert ev("(" * 50 + "1" + ")" * 50) == 1
    assert ev("1" + " + 1" * (MAX_NODES // 2 - 1)) == MAX_NODES // 2
    assert ev("2 ** 100") == 2**100
    assert ev("10 ** 100") == 10**100
    assert len(ev("'a' * 100000")) == 100_000
    assert ev("a" + ".b" * 200, {"a": None}) is None


def test_scope_objects_are_never_inspected() -> None:
    touched: list[str] = []

    class Spy:
        def __getattribute__(self, name: str) -> Any:
            touched.append(name)
            return object.__getattribute__(self, name)

        def __getattr__(self, name: str) -> Any:
            touched.append(f"missing {name}")
            return "leaked"

        def __getitem__(self, key: Any) -> Any:
            touched.append(f"[{key!r}]")
            return "leaked"

        def __eq__(self, other: object) -> bool:
            touched.append("==")
            return True

        def __hash__(self) -> int:
            touched.append("hash")
            return 1

        def __lt__(self, other: object) -> bool:
            touched.append("<")
            return True

        def __bool__(self) -> bool:
            touched.append("bool")
            return False

        def __len__(self) -> int:
            touched.append("len")
            return 0

        def __iter__(self) -> Any:
            touched.append("iter")
            return iter(())

        def __str__(self) -> str:
            touched.append("str")
            return "leaked"

        def __contains__(self, item: object) -> bool:
            touched.append("in")
            return True

    spy = Spy()
    touched.clear()
    scope = {"obj": spy, "context": {"obj": spy, "list": [spy]}}
    assert ev("obj.secret", scope) is None
    assert ev("context.obj.secret.deeper", scope) is None
    assert ev("obj['secret']", scope) is None
    assert ev("obj[0]", scope) is None
    assert ev("obj.length", scope) is None
    assert ev("context.obj", scope) is spy
    assert ev("obj == 1", scope) is False
    assert ev("obj === obj", scope) is True
    assert ev("context.list == [1]", scope) is False
    assert ev("1 in context.list", scope) is False
    assert ev("!obj", scope) is False
    assert ev("obj ? 'truthy' : 'falsy'", scope) == "truthy"
    assert ev("obj && 1", scope) == 1
    for source in (
        "obj < 1",
        "obj + 1",
        "obj * 2",
        "-obj",
        "len(obj)",
        "str(obj)",
        "str([obj])",
        "int(obj)",
        "min(obj, 1)",
        "max(context.list)",
        "lower(obj)",
        "'x' in obj",
        "obj in context",
        "context[obj]",
    ):
        with pytest.raises(ExpressionError) as info:
            ev(source, scope)
        assert "leaked" not in str(info.value)
    assert touched == []


# --------------------------------------------------------------------------- API


def test_compiled_expression_api() -> None:
    compiled = compile_expression("context.x > 5 && result.ok")
    assert isinstance(compiled, CompiledExpression)
    assert compiled.source == "context.x > 5 && result.ok"
    assert compiled.evaluate({"context": {"x": 6}, "result": {"ok": "yes"}}) == "yes"
    assert compiled.evaluate({"context": {"x": 1}}) is False
    with pytest.raises(ExpressionError, match="cannot compare null and number"):
        compiled.evaluate({})  # missing roots are None, and None > 5 is refused
    assert "CompiledExpression" in repr(compiled)


def test_compile_is_cached() -> None:
    assert compile_expression("input.x + 1") is compile_expression("input.x + 1")


def test_constant_errors_are_found_at_compile_time() -> None:
    with pytest.raises(ExpressionError, match="division by zero at column 2"):
        compile_expression("1/0")
    assert compile_expression("1 + 2 * 3").evaluate({}) == 7


def test_non_mapping_scope_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError):
        compile_expression("a.b").evaluate(None)  # type: ignore[arg-type]


def test_deeply_nested_data_is_an_expression_error() -> None:
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    other: list[Any] = []
    for _ in range(5000):
        other = [other]
    with pytest.raises(ExpressionError):
        evaluate_expression("a == b", {"a": deep, "b": other})
