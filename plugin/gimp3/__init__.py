"""The GIMP 3 plug-in (PyGObject). ``dfimat.py`` is the file GIMP runs; it needs ``gi``, so
nothing in this package is imported by the torch-free engine or the tests outside GIMP."""
