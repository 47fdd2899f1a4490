"""The store stage: the SQLite catalog (source of truth) and the FAISS files derived from it.

The access rule, one style for all of ``store/``:

- ``store/`` is the only place holding SQL (``tests/test_layout_sql.py`` scans the rest of the package and
  the faces for SQL strings, ``execute`` calls, ``sqlite3`` and a catalog's connection).
- Every store function takes the open :class:`~diffgap_search.store.catalog.Catalog` as its first argument,
  never a ``sqlite3.Connection``; a query on the catalog's own tables (files, segments, vectors, captions,
  meta) is a ``Catalog`` method, a query serving one feature is a function in that feature's module
  (``filters``, ``keywords``, ``tags``, ``similarity_rows``, ``pair_rows``, ``cavp_gaps``, ``settings``).
- ``Catalog.conn`` is the store's own: only ``store/`` modules (and tests inspecting the file) use it.
  Everything else goes through a function or method of ``store/``.
- Writes join the caller's transaction (``with catalog.batch(): ...``) unless their docstring says
  they open one of their own.
- ``store/`` imports only the core (``diffgap_search.errors``, ``config``, ``atomic_files``) and its own
  modules: what it stores comes in as plain values (numbers, strings, arrays, its own row types, or a
  protocol such as ``tags.FileMeta`` that another stage's value satisfies).
"""
