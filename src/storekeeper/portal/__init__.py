"""The portal: web admin and REST API on FastAPI, calling the same core as the CLI.

Build it with :func:`storekeeper.portal.app.create_app`; serve it with
``storekeeper start``. Nothing in the core imports this package.

::

    app.py        create_app(): the app factory
    state.py      per-process state: config, platform opened on first use
    deps.py       PlatformDep, CurrentUser, AdminDep for routes
    auth.py       API tokens, throttled password sign-in, session cookies, CSRF
    problems.py   RFC 9457 problem documents for every error
    jobs.py       background syncs recorded in the platform database
    mounts.py     apps' own endpoints at /apps/<package>/, 503 until ready
    docs.py       the offline API docs page at /docs
    api/          the REST API: api/main.py wires api/routes/<resource>.py
"""
