# nbgrader on the lab server: one course and the exchange folder shared by everyone.
# deploy/install_hub.sh copies it to <environment>/etc/jupyter/nbgrader_config.py, where the
# students' and the teacher's servers read it. The exchange must be writable by all
# (nbgrader's documentation: chmod ugo+rw); install_hub.sh creates it so.
c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = "curso-multimodal"
c.Exchange.root = "/srv/nbgrader/exchange"
