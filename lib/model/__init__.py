"""Models: the (hypergraph) DSTformer, its blocks, losses, distiller, building and loading."""
