"""
The validation report: simulate, mask, compare, and write figures and a summary.

`run_validation` reproduces the STScI notebook *Complex 2D Background* end to
end with this package; `validation_main` is its command line
(``astrobgopt validate``).
"""

import argparse
import html
import json
import time
from pathlib import Path

from .._startup import load_numerical_core
from .._checks import check_shape
from .compare import DEFAULT_WIDTHS, compare_backgrounds, default_estimators, notebook_estimators
from .masks import notebook_source_mask
from .plotting import plot_scene
from .scene import make_sinc_blemish_scene

__all__ = ['run_validation', 'validation_main']

#: Source and blemish densities of the notebook's scene (per 1000x1000 pixels).
_SOURCES_PER_MEGAPIXEL = 1250
_BLEMISHES_PER_1000_PIXELS = 8

#: Summary columns of the report: (column, heading).
_SUMMARY_COLUMNS = (('name', 'estimator'), ('rms', 'residual RMS'), ('peak', 'peak'),
                    ('bias', 'bias (masked - unmasked)'),
                    ('bias_shifted_significance', 'bias significance (shifted masks)'),
                    ('bias_significance', 'bias significance (independent pixels)'),
                    ('time_s', 'time (s)'))

_CAPTIONS = {
    'scene': 'True background, simulated scene and the source mask given to every estimator.',
    'residual_maps': 'Residual background (estimate minus truth) of each estimator, on a '
                     'common colour scale.',
    'rms_vs_scale': 'RMS of block means of (scene - background) in unmasked blocks, relative '
                    'to a perfect subtraction (sky - noiseless sky); 1 is perfect.',
}


def _caption(figure_name):
    if figure_name.startswith('bias_'):
        return ('Residual background under each source (3x3 pixels) versus source flux and '
                'radius, for masked and unmasked sources and random unmasked positions.')
    return _CAPTIONS[figure_name]


def _summary_cells(table):
    """Formatted summary cells, one list per estimator, in `_SUMMARY_COLUMNS` order."""
    return [[row['name']] + [format(row[column], table[column].format)
                             for column, _ in _SUMMARY_COLUMNS[1:]]
            for row in table]


def _write_markdown(path, title, facts, table, figures):
    headings = [heading for _, heading in _SUMMARY_COLUMNS]
    lines = [f'# {title}', ''] + [f'- {fact}' for fact in facts] + ['']
    lines += ['| ' + ' | '.join(headings) + ' |', '|' + '---|' * len(headings)]
    lines += ['| ' + ' | '.join(cells) + ' |' for cells in _summary_cells(table)]
    for figure in figures:
        lines += ['', f'![{figure["name"]}]({figure["file"]})', '', figure['caption']]
    path.write_text('\n'.join(lines) + '\n')


def _write_html(path, title, facts, table, figures):
    escape = html.escape
    headings = ''.join(f'<th>{escape(heading)}</th>' for _, heading in _SUMMARY_COLUMNS)
    rows = ''.join('<tr>' + ''.join(f'<td>{escape(cell)}</td>' for cell in cells) + '</tr>\n'
                   for cells in _summary_cells(table))
    items = ''.join(f'<li>{escape(fact)}</li>' for fact in facts)
    images = ''.join(f'<figure><img src="{escape(figure["file"])}" alt="{escape(figure["name"])}">'
                     f'<figcaption>{escape(figure["caption"])}</figcaption></figure>\n'
                     for figure in figures)
    path.write_text(
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<style>body{font-family:sans-serif;max-width:75em;margin:auto}'
        'td,th{padding:0.2em 0.8em;text-align:right}img{max-width:100%}</style></head>\n'
        f'<body><h1>{escape(title)}</h1><ul>{items}</ul>\n'
        f'<table><tr>{headings}</tr>\n{rows}</table>\n{images}</body></html>\n')


def run_validation(output_dir, *, shape=(1000, 1000), seed=4, n_sources=1250, n_blemishes=8,
                   noise=0.1, estimators=None, widths=DEFAULT_WIDTHS, dpi=80):
    """
    Reproduce the STScI notebook's background validation and write a report.

    Builds the sinc-blemish scene with sources, masks it as the notebook
    does (`notebook_source_mask`), runs the estimators, and writes to
    ``output_dir``: PNG figures, ``comparison.ecsv`` (the full table),
    ``figures.json`` (file, name and caption of every figure),
    ``report.md`` and ``report.html``.

    Parameters
    ----------
    output_dir : str or `~pathlib.Path`
        Directory for the report (created if needed).
    shape : int or tuple of int, optional
        Image shape.
    seed : int, optional
        Seed of the simulation (and of the bias test's control positions).
    n_sources : int, optional
        Number of sources.
    n_blemishes : int, optional
        Number of sinc blemishes.
    noise : float, optional
        Pixel noise standard deviation.
    estimators : dict of str to callable or None, optional
        Estimators to compare (see `compare_backgrounds`); None uses
        `default_estimators`.
    widths : sequence of int, optional
        Block widths of the RMS-versus-scale figure.
    dpi : float, optional
        Resolution of the PNG figures.

    Returns
    -------
    summary : dict
        ``table`` (the `~astropy.table.Table` of `compare_backgrounds`),
        ``figures`` (figure name to PNG path), ``report_md``,
        ``report_html``, ``figures_json`` and ``comparison`` (paths, as
        str), ``mask_fraction`` (fraction of pixels masked) and ``timings``
        (seconds spent simulating, masking and comparing).

    Notes
    -----
    With the default estimators the 1000x1000 report takes under a minute
    on two CPU cores: some 7 s for the masks, the rest mostly the spline
    fits (faster on a GPU).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    shape = check_shape(shape)
    timings = {}

    start = time.perf_counter()
    scene = make_sinc_blemish_scene(shape, n_blemishes=n_blemishes, n_sources=n_sources,
                                    noise=noise, seed=seed)
    timings['simulate'] = time.perf_counter() - start

    start = time.perf_counter()
    mask = notebook_source_mask(scene.scene)
    timings['mask'] = time.perf_counter() - start

    start = time.perf_counter()
    table = compare_backgrounds(
        scene.scene, scene.noiseless, default_estimators() if estimators is None else estimators,
        mask=mask, widths=widths, noise_residual=scene.noise_residual, sources=scene.sources,
        output_dir=output_dir, dpi=dpi, seed=seed)
    timings['compare'] = time.perf_counter() - start

    figure_paths = {'scene': str(output_dir / 'scene.png')}
    plot_scene(scene.scene, scene.noiseless, mask).savefig(figure_paths['scene'], dpi=dpi)
    figure_paths.update(table.meta['figures'])
    figures = [{'name': name, 'file': Path(path).name, 'caption': _caption(name)}
               for name, path in figure_paths.items()]

    paths = {key: output_dir / filename for key, filename in (
        ('report_md', 'report.md'), ('report_html', 'report.html'),
        ('figures_json', 'figures.json'), ('comparison', 'comparison.ecsv'))}
    table.write(paths['comparison'], format='ascii.ecsv', overwrite=True)
    paths['figures_json'].write_text(json.dumps(figures, indent=2) + '\n')
    mask_fraction = float(mask.mean())
    title = 'astrobgopt background validation'
    facts = [f'Scene: {shape[0]}x{shape[1]} pixels, {n_blemishes} sinc blemishes, '
             f'{n_sources} sources, noise {noise}, seed {seed}.',
             f'Source mask: ring-median first cut, then the multi-scale mask of the residual; '
             f'{100 * mask_fraction:.1f}% of pixels masked.',
             'Residual RMS and peak are of background - truth; the bias is the mean residual '
             'under masked minus unmasked pixels. Its significance against cyclically '
             'shifted masks is the one to judge by; the independent-pixel figure overstates '
             'it for smooth, correlated residuals.']
    _write_markdown(paths['report_md'], title, facts, table, figures)
    _write_html(paths['report_html'], title, facts, table, figures)
    return {'table': table, 'figures': figure_paths, 'mask_fraction': mask_fraction,
            'timings': timings, **{key: str(path) for key, path in paths.items()}}


def _scaled_scene(size):
    """Source and blemish counts giving the notebook's densities on a ``size``-pixel square."""
    n_sources = round(_SOURCES_PER_MEGAPIXEL * size * size / 1e6)
    n_blemishes = max(1, round(_BLEMISHES_PER_1000_PIXELS * size / 1000))
    return n_sources, n_blemishes


def validation_main(argv=None):
    """
    Command line of the validation report (``astrobgopt validate``).

    Parameters
    ----------
    argv : list of str or None, optional
        Arguments (without the program name); None reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success (argparse exits with 2 on bad arguments).

    Notes
    -----
    ``--size`` keeps the notebook's densities: 1250 sources per million
    pixels and 8 blemishes per 1000 pixels of side.
    """
    parser = argparse.ArgumentParser(
        prog='astrobgopt validate',
        description='Simulate the STScI sinc-blemish sky with sources, run the notebook '
                    'Background2D configurations and astrobgopt on it, and write a report '
                    '(report.html, report.md, figures, comparison.ecsv).')
    parser.add_argument('-o', '--output-dir', default='astrobgopt-validation',
                        help='directory for the report (default: %(default)s)')
    parser.add_argument('--size', type=int, default=None,
                        help='side of the square image in pixels (default 1000, 400 with '
                             '--quick); source and blemish counts keep the notebook densities')
    parser.add_argument('--seed', type=int, default=4, help='simulation seed (default: 4)')
    parser.add_argument('--quick', action='store_true',
                        help='a 400x400 scene: a fast check rather than the reference figures')
    parser.add_argument('--notebook-only', action='store_true',
                        help="compare only the notebook's Background2D configurations")
    args = parser.parse_args(argv)
    size = args.size if args.size is not None else (400 if args.quick else 1000)
    if size < 64:
        parser.error(f'--size must be at least 64 pixels, got {size}')
    n_sources, n_blemishes = _scaled_scene(size)
    if not args.notebook_only:
        load_numerical_core()
    summary = run_validation(args.output_dir, shape=(size, size), seed=args.seed,
                             n_sources=n_sources, n_blemishes=n_blemishes,
                             estimators=notebook_estimators() if args.notebook_only else None)
    summary['table'][[column for column, _ in _SUMMARY_COLUMNS]].pprint(max_width=-1)
    print(f'mask: {100 * summary["mask_fraction"]:.1f}% of pixels; '
          f'report: {summary["report_html"]}')
    return 0
