"""
nanoGPT's "Poor Man's Configurator", run by a script as `exec(open('configurator.py').read())`: each
`--key=value` argument overrides the script's global `key`, keeping its type. No torch in it; here so that
sample.py can be run as nanoGPT runs it. After Andrej Karpathy's nanoGPT (configurator.py, MIT License);
config files (the bare-name arguments) are left out.
"""

import sys
from ast import literal_eval

for arg in sys.argv[1:]:
    # assume it's a --key=value argument
    assert arg.startswith('--') and '=' in arg, f"expected --key=value, got {arg}"
    key, val = arg.split('=', 1)
    key = key[2:]
    if key in globals():
        try:
            # attempt to eval it it (e.g. if bool, number, or etc)
            attempt = literal_eval(val)
        except (SyntaxError, ValueError):
            # if that goes wrong, just use the string
            attempt = val
        # ensure the types match ok
        assert type(attempt) == type(globals()[key])
        print(f"Overriding: {key} = {attempt}")
        globals()[key] = attempt
    else:
        raise ValueError(f"Unknown config key: {key}")
