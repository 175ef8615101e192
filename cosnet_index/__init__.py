"""cosnet-index: an embedding database of cryo-ET subtomograms built on COS-Net.

Every subtomogram of a tomogram collection is embedded once by the COS-Net encoder into a
512-d vector (scaled so that plain L1 distance *is* the learned match head), stored in a FAISS
index with SQLite metadata, and queried against named one-shot class prototypes.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
