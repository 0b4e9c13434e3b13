"""leadstream's published JSON Schemas, importable as ``streams.schemas`` (package data).

The ``*.schema.json`` files are the contract for producers in any language; this file
only lets the wheel ship them inside the ``streams`` package.
"""
