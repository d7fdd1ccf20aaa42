"""deltaboard's worker side: the NumPy backprop core (`worker.nn`) and the RQ job (`worker.jobs`)."""
