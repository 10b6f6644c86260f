"""The suite's infrastructure below the microscope: what every package of the suite builds on
and that is not itself about taking a network apart. Like the rest of :mod:`dissect`, it imports
none of the suite's other packages.

- :mod:`~dissect.infra.errors`: the one exception type for problems a user can cause;
- :mod:`~dissect.infra.atomic`: writes that never leave a half-written file;
- :mod:`~dissect.infra.runtime`: device choice, progress bars, the command-line toolkit;
- :mod:`~dissect.infra.distributed`: torch.distributed helpers and the sharded data-set loop;
- :mod:`~dissect.infra.checkpoints`: the checkpoint format (safetensors + JSON sidecar);
- :mod:`~dissect.infra.datasets`: the data-set loaders.
"""
