"""Similarity measures: the registry (:mod:`.registry`: every measure, its properties and one entry
point) over one module per family: CKA (:mod:`.cka`), the column-space family (:mod:`.cca`), shape
(:mod:`.shape`), RSA (:mod:`.rsa`), deconfounded CKA (:mod:`.deconfounded`), ReSi's neighbourhood
(:mod:`.neighbours`), RSM (:mod:`.rsm`), statistic (:mod:`.statistics`) and output (:mod:`.functional`)
measures, all on the per-layer work of :mod:`.view`."""
from .cca import canonical_correlations, linear_regression_fit, mean_cca, pwcca, svcca
from .cka import linear_cka, rbf_cka
from .deconfounded import deconfounded_cka, inputs_view
from .registry import (INVARIANCES, INVERTIBLE, ISOTROPIC, LINEAR_CKA, MEASURES, ORTHOGONAL, PERMUTATION, TRANSLATION,
                       MeasureInfo, MeasureParameter, identical_and_unrelated, layer_views, matrix_of_views, movement,
                       parameter_defaults, prepared_options, similarities_of_views, similarity,
                       similarity_matrix)
from .rsa import rsa
from .shape import procrustes_angle, shape_distance
from .alignment import (aligned_cosine, hard_correlation_match, orthogonal_procrustes, permutation_procrustes,
                        procrustes_size_and_shape, soft_correlation_match)
from .spectral import eigenspace_overlap, gulp
from .registry import colour_range, is_unbounded, unrelated_baseline
from .functional import accuracy_difference, disagreement, jsd
from .neighbours import jaccard_knn, rank_similarity, second_order_cosine
from .rsm import distance_correlation, rsa_correlation, rsm_norm_difference
from .statistics import concentricity_difference, magnitude_difference, uniformity_difference
