"""decalite: an open, fast and fully testable re-implementation of DECA."""

__version__ = "0.1.0"
