"""decalite-view: a local web page that shows reconstructions (their animatable GLBs) beside their photos, with
sliders for the expression components, jaw and head pose. The page (``static/``) is built from npm packages
(three.js) by ``make viewer`` and ships with the package, so it works offline; :mod:`.server` serves it."""
