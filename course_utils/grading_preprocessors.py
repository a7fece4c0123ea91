"""nbgrader preprocessors of the course's autograding (instructor/nbgrader_config.py registers them).

- `SealedExecute` runs the notebook as nbgrader's `Execute` does, and before every autograded test
  cell it puts back the interpreter's machinery as it was before the first cell: IPython's input and
  AST transformers and event callbacks, the shell's methods, `builtins`, the `sys` hooks (trace,
  profile, excepthook, displayhook, import hooks, stdout/stderr) and replaced modules. A cell of the
  submission that wraps every later cell in `try/except` or hides errors some other way then no
  longer reaches the tests. It also gives a test cell's points on the test's own verdict: a warning
  printed on stderr does not turn a passing test into a 0. And it keeps at most `max_output_bytes` of
  output per cell, as it arrives, so that a cell printing megabytes does not fill the memory, the
  graded notebook or the feedback page.

The reset runs in the same kernel as the student's code, so a submission written against this very
file could still undo it: `course_utils.grading` also flags every submission whose code touches the
interpreter's machinery, for the teacher to look at, and grades each one in a sandbox where nothing
it does reaches the gradebook or the other submissions.
"""

from __future__ import annotations

import secrets

from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from nbgrader.utils import is_grade, is_solution
from traitlets import Integer

# Runs first, before any cell of the notebook: records the pristine state and defines the reset.
_SEAL = r"""
def {name}():
    import builtins, sys, threading
    from IPython.core.inputtransformer2 import TransformerManager

    ip = get_ipython()
    manager = ip.input_transformer_manager
    shell_classes = [cls for cls in type(ip).__mro__ if cls is not object] + [type(manager), TransformerManager]
    state = {{
        "builtins": dict(vars(builtins)),
        "sys": {{name: getattr(sys, name) for name in (
            "excepthook", "displayhook", "breakpointhook", "unraisablehook", "stdout", "stderr", "stdin",
        )}},
        "meta_path": list(sys.meta_path),
        "path_hooks": list(sys.path_hooks),
        "modules": dict(sys.modules),
        "post": list(ip.input_transformers_post),
        "cleanup": list(manager.cleanup_transforms),
        "line": list(manager.line_transforms),
        "token": list(manager.token_transformers),
        "ast": list(ip.ast_transformers),
        "manager": manager,
        "events": {{event: list(callbacks) for event, callbacks in ip.events.callbacks.items()}},
        "shell": dict(vars(ip)),
        "classes": {{cls: dict(vars(cls)) for cls in shell_classes}},
    }}

    def restore():
        sys.settrace(None)
        sys.setprofile(None)
        threading.settrace(None)
        threading.setprofile(None)
        for key in set(vars(builtins)) - set(state["builtins"]):
            delattr(builtins, key)
        for key, value in state["builtins"].items():
            if vars(builtins).get(key, restore) is not value:
                setattr(builtins, key, value)
        for key, value in state["sys"].items():
            setattr(sys, key, value)
        sys.meta_path[:] = state["meta_path"]
        sys.path_hooks[:] = state["path_hooks"]
        sys.path_importer_cache.clear()
        for key, module in list(sys.modules.items()):
            if key in state["modules"] and module is not state["modules"][key]:
                sys.modules[key] = state["modules"][key]
            elif not isinstance(module, type(sys)):
                del sys.modules[key]
        for cls, attributes in state["classes"].items():
            for key in set(vars(cls)) - set(attributes):
                delattr(cls, key)
            for key, value in attributes.items():
                if vars(cls).get(key, restore) is not value:
                    setattr(cls, key, value)
        for key in set(vars(ip)) - set(state["shell"]):
            if callable(getattr(type(ip), key, None)):
                delattr(ip, key)  # an instance attribute hiding a method of the shell
        for key, value in state["shell"].items():
            if callable(value) and vars(ip).get(key, restore) is not value:
                setattr(ip, key, value)
        ip.input_transformer_manager = manager = state["manager"]
        ip.input_transformers_post[:] = state["post"]
        manager.cleanup_transforms[:] = state["cleanup"]
        manager.line_transforms[:] = state["line"]
        manager.token_transformers[:] = state["token"]
        ip.ast_transformers[:] = state["ast"]
        for event, callbacks in state["events"].items():
            ip.events.callbacks[event][:] = callbacks

    return restore


{name} = {name}()
get_ipython().user_ns_hidden["{name}"] = {name}
"""

# Before each test cell: the reset, then a token that says it ran to the end.
_RESET = '{name}()\nprint("{token}")\n'


class GradingTamperedError(Exception):
    """The interpreter could not be put back before a test cell: the cell gets no points."""


class SealedExecute(Execute):
    """nbgrader's Execute with the interpreter put back before each test cell (see the module)."""

    max_output_bytes = Integer(
        100_000, help="Bytes of output kept per cell; the rest is dropped with a notice (-1: no limit)."
    ).tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._seal_name = f"_course_seal_{secrets.token_hex(8)}"
        self._sealed = False
        self._cut_cell = None
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        if not self._sealed:
            self._run_hidden(_SEAL.format(name=self._seal_name), index)
            self._sealed = True
        test_cell = cell.cell_type == "code" and is_grade(cell) and not is_solution(cell)
        if test_cell:
            problem = self._reset(index)
            if problem:
                cell.outputs = [_error_output(problem)]
                return cell, resources
        cell, resources = super().preprocess_cell(cell, resources, index)
        if test_cell:
            _stderr_to_stdout(cell)
        return cell, resources

    def _reset(self, index: int) -> str:
        """Put the interpreter back; "" if it worked, else what went wrong (in Spanish)."""
        token = secrets.token_hex(16)
        outputs = self._run_hidden(_RESET.format(name=self._seal_name, token=token), index)
        printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        if any(o.output_type == "error" for o in outputs) or token not in printed:
            return (
                "El código de la entrega cambió el intérprete de forma que las pruebas no pueden ejecutarse "
                "limpias: esta celda de pruebas no da puntos. El profesor revisa la entrega."
            )
        return ""

    def _run_hidden(self, source: str, index: int) -> list:
        """Run code in the kernel without adding it to the notebook; its outputs."""
        hidden = NotebookNode(cell_type="code", source=source, metadata=NotebookNode(), outputs=[])
        hidden.execution_count = None
        self.execute_cell(hidden, index, store_history=False)
        return hidden.outputs

    def output(self, outs, msg, display_id, cell_index):
        """Keep at most max_output_bytes per cell, counted as the outputs arrive."""
        out = super().output(outs, msg, display_id, cell_index)
        if self.max_output_bytes < 0 or out is None:
            return out
        over = sum(_size(o) for o in outs) - self.max_output_bytes
        if over <= 0:
            return out
        if self._cut_cell == cell_index:  # already cut: drop what comes
            outs.remove(out)
            return None
        self._cut_cell = cell_index
        if out.output_type == "stream" and over < _size(out):
            out.text = out.text.encode()[: _size(out) - over].decode(errors="ignore")
        else:
            outs.remove(out)
        outs.append(_truncated(self.max_output_bytes))
        return None


def _size(output) -> int:
    if output.output_type == "stream":
        return len(output.get("text", "").encode())
    if output.output_type == "error":
        return sum(len(line.encode()) for line in output.get("traceback", []))
    return sum(len(str(v).encode()) for v in output.get("data", {}).values())


def _truncated(limit: int) -> NotebookNode:
    # On stdout, not stderr: the notice must not change the grade.
    text = f"\n… salida recortada: esta celda escribió más de {limit // 1000} kB.\n"
    return NotebookNode(output_type="stream", name="stdout", text=text)


def _error_output(message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=GradingTamperedError.__name__, evalue=message, traceback=[message])


def _stderr_to_stdout(cell) -> None:
    """A test's verdict is its error, not its warnings: nbgrader gives 0 to any stderr in a test cell."""
    for output in cell.outputs:
        if output.output_type == "stream" and output.name == "stderr":
            output.name = "stdout"


class TestVerdictOnly(NbGraderPreprocessor):
    """Feedback: a failed test cell shows its message, not the traceback's lines of the (hidden) test."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and is_grade(cell) and not is_solution(cell):
            for output in cell.outputs:
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources
