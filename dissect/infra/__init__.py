"""The suite's infrastructure below the microscope: what every package of the suite builds on
and that is not itself about taking a network apart (so far the data-set loaders,
:mod:`dissect.infra.datasets`). Like the rest of :mod:`dissect`, it imports none of the suite's
other packages."""
