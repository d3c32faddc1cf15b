"""The configs hffjax ships: ``hffjax train --config NAME`` finds ``NAME.py`` here (installed as ``hffjax.configs``)."""
