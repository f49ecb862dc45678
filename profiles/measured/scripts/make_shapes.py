"""Write shapes.json (model name -> greensim shape dict) for the profiler scripts beside this file.

    python profiles/measured/scripts/make_shapes.py Llama-3.1-8B Llama-3.1-70B ... > shapes.json
"""

import json
import sys

from greensim.api.catalog import model_shape

print(json.dumps(dict(model_shape(m) for m in sys.argv[1:]), indent=1))
