"""Expression analysis of one slide, Qt-free: embeddings, clusters, marker genes, label agreement.

The computations are the field's reference implementations (scanpy, scikit-learn), imported lazily
inside each function so that opening a slide never pays for them.
"""
