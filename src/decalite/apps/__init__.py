"""What is done with a trained model: reconstruction of photos and video (:mod:`.reconstruct`), analysis-by-synthesis
fitting (:mod:`.fitting`), animation (:mod:`.animate`), NoW and mesh export (:mod:`.export`) and the embedded head's
showcase (:mod:`.showcase`). The command-line tools (:mod:`decalite.cli`) only parse configs and call these."""
