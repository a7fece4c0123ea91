# nbgrader course directory of the course (instructor/GUIA.md explains how it is used).
#
#   source/NN_name/NN_name.ipynb   the instructor notebooks: solutions, visible and hidden tests
#   release/, submitted/, autograded/, feedback/, gradebook.db   made by nbgrader (not committed)
#
# `make cuadernos` generates the student versions from source/ into ../notebooks/ (committed).
# nbgrader reads this file when it runs in this folder; the paths below are relative to it, so
# the course directory can also be copied elsewhere (the tests do) and keeps working.
import os

c = get_config()  # noqa: F821 (nbgrader provides it)
here = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "curso-multimodal"  # the same as deploy/nbgrader/nbgrader_config.py
c.CourseDirectory.root = here
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
# The gradebook: one SQLite file next to this configuration.
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(here, "gradebook.db")

# What the student sees in place of a solution.
c.ClearSolutions.code_stub = {"python": "# TU CÓDIGO AQUÍ\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "ESCRIBE AQUÍ TU RESPUESTA"
# The sources are committed without outputs (tests/test_notebook_hygiene.py) except the cells whose
# output nbval compares (# NBVAL_CHECK_OUTPUT): the student versions keep those outputs as they are.
c.ClearOutput.enabled = False

# The feedback page in Spanish: nbgrader's own template with its words translated (plantillas/).
c.HTMLExporter.template_name = "retroalimentacion"
c.HTMLExporter.extra_template_basedirs = [os.path.join(here, "plantillas")]

# The exchange folder of the lab server (deploy/install_hub.sh creates it, writable by all).
c.Exchange.root = "/srv/nbgrader/exchange"

# Autograding runs each notebook whole, models included: a slow CPU needs more than nbgrader's
# default 30 s for some cells.
c.Execute.timeout = 600
# At the end of a notebook the kernel is killed, not asked to stop: a submission may have made its kernel
# ignore the request, and a kernel left behind has kept nbclient's cleanup waiting.
c.Execute.shutdown_kernel = "immediate"

# Autograding (course_utils/grading_preprocessors.py; instructor/GUIA.md, paso 4): nbgrader's steps, with
# SealedExecute in place of Execute (before each test cell the interpreter is put back as it was before the
# first cell, a warning on stderr does not take a test's points, and each cell keeps at most 100 kB of
# output as it arrives) and with LimitOutput's line limit kept.
c.Autograde.autograde_preprocessors = [
    "course_utils.grading_preprocessors.SealedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.SealedExecute.max_output_bytes = 100_000
# The feedback page shows neither the hidden tests nor the lines of a failed test, only its message.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "course_utils.grading_preprocessors.TestVerdictOnly",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
# `nbgrader export` writes the dates in the course's zone («2026-03-13 20:00:00+01:00»), not in naive UTC.
c.ExportApp.plugin_class = "course_utils.grading.ZonedCsvExport"
c.ZonedCsvExport.zone = "Europe/Madrid"
