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
})
# Every cross-reference must resolve (a broken one is an error with -W).
nitpicky = True
html_theme_options = {
    'github_url': 'https://github.com/astrobgopt/astrobgopt',
}
html_static_path = ['_static']
plot_include_source = True
plot_html_show_source_link = False
extensions += ['matplotlib.sphinxext.plot_directive']
