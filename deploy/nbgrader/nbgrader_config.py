# nbgrader on the lab server: one course and the exchange folder shared by everyone.
# deploy/install_hub.sh copies it to <environment>/etc/jupyter/nbgrader_config.py, where the
# students' and the teacher's servers read it. The exchange is writable by all with the sticky bit
# (1777: nobody renames or deletes what is not hers), and the course's folder in it is created by root
# and owned by the teacher (deploy/lab_permissions.sh; nbgrader's issue #1225).
c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = "curso-multimodal"
c.Exchange.root = "/srv/nbgrader/exchange"
