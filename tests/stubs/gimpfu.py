"""Stand-in for GIMP 2.10's gimpfu, for tests: ``register`` records the procedure instead of
installing it, ``main`` does nothing, and gimp/pdb/enums come from the sibling stubs."""

import gimp
from gimpenums import *  # noqa: F401,F403

pdb = gimp.pdb

PF_INT8, PF_INT16, PF_INT32, PF_INT, PF_FLOAT, PF_STRING = 0, 1, 2, 3, 4, 5
PF_IMAGE, PF_LAYER, PF_CHANNEL, PF_DRAWABLE, PF_VECTORS = 6, 7, 8, 9, 10
PF_TOGGLE, PF_BOOL, PF_OPTION, PF_RADIO, PF_SLIDER, PF_SPINNER = 11, 11, 12, 13, 14, 15
PF_TEXT, PF_FILE, PF_DIRNAME = 16, 17, 18

registered = []
_VALID = {PF_INT8, PF_INT16, PF_INT32, PF_FLOAT, PF_STRING, PF_IMAGE, PF_LAYER, PF_CHANNEL,
          PF_DRAWABLE, PF_VECTORS, PF_TOGGLE, PF_OPTION, PF_RADIO, PF_SLIDER, PF_SPINNER,
          PF_TEXT, PF_FILE, PF_DIRNAME}


def register(proc_name, blurb, help, author, copyright, date, label, imagetypes, params, results,
             function, menu=None, domain=None, on_query=None, on_run=None):
    """Checks what gimpfu checks at registration, then records it."""
    for p in params:
        if p[0] not in _VALID or not isinstance(p[1], str):
            raise TypeError(f"bad parameter {p!r}")
        if p[0] == PF_OPTION and not (isinstance(p[4], list) and 0 <= p[3] < len(p[4])):
            raise TypeError(f"PF_OPTION {p[1]!r} needs a default index into its list")
    if menu is not None and menu.startswith("<Image>") and [p[0] for p in params[:2]] != [PF_IMAGE, PF_DRAWABLE]:
        raise TypeError("an <Image> menu procedure must take the image and drawable first")
    registered.append(dict(name=proc_name, blurb=blurb, label=label, imagetypes=imagetypes,
                           params=params, results=results, function=function, menu=menu))


def main():
    pass
