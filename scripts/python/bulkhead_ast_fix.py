"""CPython before 3.11.8 and 3.12.2 can raise SystemError("AST constructor
recursion depth mismatch") from ast.parse (CPython gh-106905). Hypothesis,
under schemathesis, parses a strategy's source only to describe a lambda and
copes with a SyntaxError; this turns that one SystemError into a SyntaxError,
so the API fuzzing is not cut short by an interpreter bug. Loaded by a .pth
file in the repository's own virtualenv only."""

import ast

_parse = ast.parse


def _parse_or_syntax_error(*args, **kwargs):
    try:
        return _parse(*args, **kwargs)
    except SystemError as e:
        if "recursion depth mismatch" not in str(e):
            raise
        raise SyntaxError(str(e)) from e


ast.parse = _parse_or_syntax_error
