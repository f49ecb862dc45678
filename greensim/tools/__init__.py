"""Tools that produce data rather than simulate: the GPU profiler (:mod:`.profiler`, with
the PyTorch decoder it measures, :mod:`.torch_decoder`), the roofline calibration
(:mod:`.calibrate`), the decode-power fit (:mod:`.power_fit`) and the validation report
(:mod:`.validation`). Each runs as ``python -m greensim.tools.<name>``; nothing here is
imported by a simulation, and only :mod:`.torch_decoder` needs torch.
"""
