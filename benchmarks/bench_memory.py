"""
Peak memory of the ``astrobgopt`` command on a large float32 FITS frame,
against TensorFlow's own import footprint.

Run: ``python benchmarks/bench_memory.py [HEIGHT WIDTH]`` (default 4000 6000,
a 96 MB frame). Each peak is the maximum resident set size of a fresh
process, as ``/usr/bin/time -f %M`` reports it (ru_maxrss read in a parent
would be the parent's own peak). Target: (CLI peak - TF import footprint) /
input float32 size <= 6.
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


def peak_rss_mb(command, cwd):
    """Peak resident memory (MB) of ``command`` run under ``/usr/bin/time -f %M``."""
    run = subprocess.run(['/usr/bin/time', '-f', 'PEAK_KB %M', *command], cwd=cwd,
                         capture_output=True, text=True, check=False)
    lines = [line for line in run.stderr.splitlines() if line.startswith('PEAK_KB ')]
    if run.returncode != 0 or not lines:
        sys.exit(f'{" ".join(command)} failed ({run.returncode}):\n{run.stderr}')
    return int(lines[-1].split()[1]) / 1024


def main():
    import numpy as np
    from astropy.io import fits

    from astrobgopt.datasets import make_light_pollution_sky

    shape = tuple(int(value) for value in sys.argv[1:3]) or (4000, 6000)
    with tempfile.TemporaryDirectory() as directory:
        frame = Path(directory) / 'frame.fits'
        image = make_light_pollution_sky(shape, seed=1).image.astype(np.float32)
        fits.writeto(frame, image)
        input_mb = image.nbytes / 2**20
        del image
        tensorflow = peak_rss_mb([sys.executable, '-c', 'import tensorflow'], directory)
        cli = peak_rss_mb([sys.executable, '-m', 'astrobgopt.cli', frame.name, '-o', 'out',
                           '--quiet'], directory)
    ratio = (cli - tensorflow) / input_mb
    print(f'frame {shape[0]} x {shape[1]} float32: {input_mb:.3g} MB')
    print(f'TensorFlow import peak: {tensorflow:.0f} MB')
    print(f'CLI peak: {cli:.0f} MB ({cli / input_mb:.1f} x the input)')
    print(f'(CLI peak - TF import) / input: {ratio:.2f} (target <= 6)')


if __name__ == '__main__':
    main()
