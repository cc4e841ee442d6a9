"""The Outrider API: typed models that are the single source of truth for CRDs and shared shapes."""
