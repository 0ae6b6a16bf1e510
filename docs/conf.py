# Sphinx configuration for astrobgopt (sphinx-astropy theme and automodapi).
import datetime

from sphinx_astropy.conf.v2 import *  # noqa: F401,F403
from sphinx_astropy.conf.v2 import exclude_patterns, intersphinx_mapping, extensions

import astrobgopt

project = 'astrobgopt'
author = 'The astrobgopt developers'
copyright = f'{datetime.date.today().year}, {author}'
version = astrobgopt.__version__.split('+')[0]
release = astrobgopt.__version__

exclude_patterns += ['_build']
intersphinx_mapping.update({
    'photutils': ('https://photutils.readthedocs.io/en/stable/', None),
    'ccdproc': ('https://ccdproc.readthedocs.io/en/stable/', None),
    'regions': ('https://astropy-regions.readthedocs.io/en/stable/', None),
    'distributed': ('https://distributed.dask.org/en/stable/', None),
})
# Every cross-reference must resolve (a broken one is an error with -W).
nitpicky = True
nitpick_ignore_regex = [
    # TensorFlow and xisf publish no Sphinx inventory: their names cannot resolve.
    ('py:.*', r'(tf|tensorflow|xisf)\..*'),
]
# The projects whose inventories intersphinx fetches (see intersphinx_mapping),
# the standard-library modules the docs name first (Python's inventory).
INTERSPHINX_PACKAGES = ('pathlib', 'functools', 'os', 'warnings', 'multiprocessing',
                        'concurrent', 'numpy', 'scipy', 'matplotlib', 'astropy',
                        'photutils', 'ccdproc', 'regions', 'dask', 'distributed')
html_theme_options = {
    'github_url': 'https://github.com/astrobgopt/astrobgopt',
}
html_static_path = ['_static']
plot_include_source = True
plot_html_show_source_link = False
extensions += ['matplotlib.sphinxext.plot_directive']


def _ignore_other_projects_offline(app, config):
    """
    Built offline (``-D disable_intersphinx=1``), the inventories of the other
    projects are missing, so references into them cannot resolve; references
    to astrobgopt's own names still must.
    """
    if config.disable_intersphinx:
        pattern = r'({})(\..*)?'.format('|'.join(INTERSPHINX_PACKAGES))
        config.nitpick_ignore_regex = [*config.nitpick_ignore_regex, ('py:.*', pattern)]


def setup(app):
    app.connect('config-inited', _ignore_other_projects_offline)
