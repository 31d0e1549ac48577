"""One adapter per external system, each behind a small Protocol (see ``base``).

* ``ansible``   - runs playbooks through ansible-runner (PlaybookRunner)
* ``postgres``  - the service endpoint through psycopg 3 (ServiceEndpoint)

Third-party exceptions are translated into ``dalp_dr.errors`` inside these files.
"""
