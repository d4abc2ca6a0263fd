"""FLUX.1 Deforum: every frame is FLUX img2img of the previous frame, warped by Deforum's
motion schedules in latent space.

``shot`` checks a shot and types it, ``plan`` keys every frame (no torch); ``tiny``, ``models``
and ``lookup`` build or find the components, ``sampler`` runs FLUX img2img, ``motion``,
``noise`` and ``color_coherence`` are Deforum's per-frame operations, ``render`` runs a plan
through the shared cache and output writer.
"""
