"""The app as the load test's sessions see it: its pages, deep links into them, the error alerts it
shows on purpose and the failed loads that are not its own."""
from __future__ import annotations

import re

from ui.frame import navigation

#: url path -> sidebar title, in the order of app.py
PAGES = {page.url_path: page.title for page in navigation.PAGES}

#: Deep links a user might share (query parameters are the widgets' bound keys).
DEEP_LINKS = {
    "": ["?src_kind=Synthetic+set", "?src_kind=Sample+model&src_model=mlp_seed1"],
    "estimators": ["?est_n=200&est_seed=3", "?est_log_sigma=1.0", "?est_batch=16"],
    "compare": ["?cmp_dd_k=5", "?cmp_a_model=mlp_seed2&cmp_dd_k=12"],
    "outliers": ["?out_what=Random+fraction&out_fraction=0.3&out_log_c=3", "?out_index=42&out_log_c=2"],
    "invariances": ["?inv_seed=5", "?inv_spread=2.0"],
    "separability": ["?sep_seed=4&sep_log_c=1.5", "?src_kind=Synthetic+set&sep_log_c=2"],
    "function_preserving": ["?fp_spread=2.5&fp_seed=7", "?fp_seed=1"],
    "manipulate": ["?man_epochs=40", "?man_target=All+ones+%28everything+alike%29"],
    "neural_diversity": ["?nd_kind=Step+drive+%2BA+on+pre-activations&nd_amp_drive=0.4", "?nd_amp_sin=0.8",
                         "?nd_seed=3&nd_gain=8.0"],
}

#: Error alerts the app shows on purpose: teaching displays and validation of a choice that random
#: moves can make. Anything else in an error alert counts as an error.
EXPECTED_ERROR_ALERTS = {
    "estimators: float32 round-off display": re.compile(r"the uncentred float32 estimator is off by"),
    "function-preserving: low-precision display": re.compile(r"predictions changed: in \w+ the edit is no\s+longer"),
    "neural diversity: saturated network display": re.compile(r"CKA is undefined for .* the hidden layer is constant"),
    "manipulate: same layer picked twice": re.compile(r"pick two different layers"),
    "sidebar: more classes than dimensions": re.compile(r"n_classes \(\d+\) must not exceed dim"),
    "separability: no non-negative orthogonal direction": re.compile(r"no direction is both orthogonal to every normal"),
}

#: Failed loads that are not the app's: Streamlit probes for a base path by requesting
#: /<page>/_stcore/{health,host-config} (404s), and the page icon comes from fonts.gstatic.com,
#: which this loopback-only test cannot reach. Any other failed load counts as an error.
BASE_PATH_PROBE = re.compile(r"^http://127\.0\.0\.1:\d+/[\w/]+/_stcore/(health|host-config)$")
