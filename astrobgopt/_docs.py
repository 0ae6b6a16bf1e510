"""
Parameter documentation shared by the estimator, the interpolator and the
fit's options, inserted into their docstrings the way photutils inserts its
``sigma_clip`` text (``_insert_sigma_clip_doc``): a docstring names the
parameters it shares with a placeholder line, and the decorator replaces it.
"""

import re

__all__ = []

#: numpydoc entries of the fit options, keyed by parameter name.
FIT_PARAMETER_DOCS = {
    'n_points': """\
n_points : int, optional
    Number of control points (>= 4). More points follow finer structure
    (and more of any unmasked nebulosity). 32 suits astrophotographs;
    100-300 suit complex detector or scattered-light patterns.""",
    'order': """\
order : {1, 2, 3, 4}, optional
    Polyharmonic order: 2 is the thin-plate spline, 3 the cubic.""",
    'initializer': """\
initializer : {'grid', 'random'}, optional
    Initial placement of the control points.""",
    'loss': """\
loss : {'robust', 'asymmetric'}, optional
    ``'robust'`` (Tukey biweight of the noise-normalized residual: no
    offset bias, stars and nebulae rejected) or ``'asymmetric'`` (the
    seed tool's loss; use with ``stretch='mtf'``). See
    `astrobgopt.optimize`.""",
    'alpha': """\
alpha : float, optional
    Weight of the overshoot and negative-background penalties of the
    ``'asymmetric'`` loss.""",
    'smoothing': """\
smoothing : float, optional
    Bending-energy penalty relative to the data term (>= 0).""",
    'epochs': """\
epochs : int, optional
    Maximum number of Adam steps (0 keeps the initialization).""",
    'learning_rate': """\
learning_rate : float, optional
    Adam learning rate (coordinates in units of the longest image side,
    values in units of the data's robust spread).""",
    'batch_size': """\
batch_size : int or None, optional
    Samples per step; None uses all (deterministic full batch).""",
    'patience': """\
patience : int, optional
    Steps without improvement before stopping early.""",
    'validation_fraction': """\
validation_fraction : float, optional
    Fraction of the samples held out of the optimization (in [0, 0.5]);
    early stopping watches their loss so that the control points stop
    moving once that no longer generalizes (0 watches the training
    loss).""",
    'seed': """\
seed : int, optional
    Seed of the random initializer, the held-out samples and the
    mini-batches; fits are deterministic for a given seed.""",
}

# The placeholder line: its indentation is that of the inserted entries.
_PLACEHOLDER = re.compile(r'^( *)FIT_PARAMETERS\n', re.MULTILINE)


def insert_fit_parameter_docs(*names):
    """
    A decorator that replaces the ``FIT_PARAMETERS`` line of a docstring by
    the shared entries of ``names``, in that order.
    """
    unknown = set(names) - set(FIT_PARAMETER_DOCS)
    if unknown:
        raise KeyError(f'no shared documentation for {sorted(unknown)}')

    def decorate(documented):
        def entries(match):
            indent = match.group(1)
            text = '\n'.join(FIT_PARAMETER_DOCS[name] for name in names)
            return ''.join(f'{indent}{line}\n' if line else '\n'
                           for line in text.splitlines())

        documented.__doc__, count = _PLACEHOLDER.subn(entries, documented.__doc__)
        if count != 1:
            raise ValueError(f'{documented.__name__} has no FIT_PARAMETERS line to fill')
        return documented

    return decorate
