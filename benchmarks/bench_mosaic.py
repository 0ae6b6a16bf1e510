"""
A mosaic larger than memory: time and peak resident memory of a chunked fit.

Run: ``python benchmarks/bench_mosaic.py [--size 40000] [--dir /tmp]
[--keep]``. Creates (or reuses) a ``size x size`` float32 FITS mosaic
(40,000 x 40,000 is 6.4 GB), written band by band: a smooth gradient with a
glow, Gaussian noise and faint stars. A fresh process then fits it with
`astrobgopt.chunked.process_fits`, what ``astrobgopt --chunked`` runs (the
FITS read band by band by `astrobgopt.chunked.fits_bands`, Dask's threads
doing the bands) and writes the background and
the subtracted mosaic band by band into two new FITS files. The child's
peak resident memory is polled from ``/proc/PID/status`` (``ru_maxrss`` of
a child would report the parent's peak). The files are deleted at the end
unless ``--keep``.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

_BAND_ROWS = 500


def sky_band(top, rows, size, rng):
    """Rows ``top:top + rows`` of the synthetic mosaic (float32)."""
    y = (np.arange(top, top + rows, dtype=np.float32)[:, None] / size)
    x = np.arange(size, dtype=np.float32)[None, :] / size
    band = 100 + 20 * x + 10 * y + 15 * np.exp(-((x - 0.3) ** 2 + (y - 0.6) ** 2) / 0.05)
    band = band + rng.standard_normal((rows, size), dtype=np.float32)
    stars = rng.integers(0, band.size, size=band.size // 2000)
    band.flat[stars] += rng.exponential(50, size=len(stars)).astype(np.float32)
    return band.astype(np.float32)


def make_mosaic(path, size):
    """Write the mosaic band by band (never whole in memory)."""
    from astrobgopt.chunked import create_fits

    writer = create_fits(path, (size, size), overwrite=True)
    rng = np.random.default_rng(1)
    for top in range(0, size, _BAND_ROWS):
        rows = min(_BAND_ROWS, size - top)
        writer[top:top + rows] = sky_band(top, rows, size, rng)


def fit_mosaic(path, out_dir):
    """In the child: fit ``path`` and write the background and subtracted mosaics."""
    from astrobgopt import SplineOptBackground
    from astrobgopt.chunked import process_fits

    start = time.perf_counter()
    result = process_fits(path, {'model': os.path.join(out_dir, 'background.fits'),
                                 'subtracted': os.path.join(out_dir, 'subtracted.fits')},
                          SplineOptBackground(progress=False), scheduler='threads',
                          overwrite=True)
    fitted = sum(result.timings[stage] for stage in ('downscale', 'extended_mask', 'fit'))
    print(repr({'fit_s': fitted, 'total_s': time.perf_counter() - start,
                'timings': {k: round(v, 2) for k, v in result.timings.items()},
                'control_points': len(result.model.control_points)}))


def peak_rss_of(command):
    """Run ``command``; return (its last output line, its peak VmRSS in bytes)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peak = 0
    status = f'/proc/{process.pid}/status'
    while process.poll() is None:
        try:
            with open(status) as stream:
                for line in stream:
                    if line.startswith('VmRSS:'):
                        peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            break
        time.sleep(0.05)
    output = process.stdout.read()
    if process.returncode:
        raise RuntimeError(f'the fit failed (exit {process.returncode})')
    return output.strip().splitlines()[-1], peak


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', type=int, default=40000, help='mosaic side in pixels')
    parser.add_argument('--dir', default='/tmp', help='where the mosaic files go')
    parser.add_argument('--keep', action='store_true', help='keep the files afterwards')
    args = parser.parse_args(argv)
    path = os.path.join(args.dir, f'astrobgopt_mosaic_{args.size}.fits')
    if not os.path.exists(path):
        start = time.perf_counter()
        make_mosaic(path, args.size)
        print(f'created {path} ({os.path.getsize(path) / 1e9:.1f} GB) in '
              f'{time.perf_counter() - start:.0f} s')
    code = (f'import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); '
            f'import bench_mosaic; bench_mosaic.fit_mosaic({path!r}, {args.dir!r})')
    start = time.perf_counter()
    line, peak = peak_rss_of([sys.executable, '-c', code])
    wall = time.perf_counter() - start
    size_gb = args.size ** 2 * 4 / 1e9
    print(f'{args.size}x{args.size} float32 mosaic ({size_gb:.1f} GB): fit + background and '
          f'subtracted written in {wall:.0f} s (child process, TensorFlow import included); '
          f'peak RSS {peak / 1e9:.2f} GB ({peak / (size_gb * 1e9):.2f}x the mosaic)')
    print(line)
    if not args.keep:
        for name in (path, os.path.join(args.dir, 'background.fits'),
                     os.path.join(args.dir, 'subtracted.fits')):
            if os.path.exists(name):
                os.remove(name)


if __name__ == '__main__':
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    main()
