"""Files in and out: representation files read without unpickling (one module per format, the checks
they share, the strict zip reader, the caps on a stranger's file), weights told apart from
activations, activations captured from a torch module, files streamed in row blocks, and the
exports of a heatmap."""
from .checks import MAX_ARRAYS, MAX_CSV_COLUMNS, MAX_ELEMENTS
from .representations import SUPPORTED, load_representations
from .safetensors_files import SAFETENSORS_MAX_HEADER, safetensors_header
from .weights import LABEL_KEYS, WEIGHT_NAME, activation_layers, refuse_weights, weights_reason
