"""Batch conversion of a whole dataset tree into the cache: `napari-stimage convert ROOT`.

For every slide under ROOT (`io.registry.find_slides`) it builds what opening the slide would build
on first use: the expression cache of its count CSV (`cache.py`) and, for large PNG/JPEG
images, the tiled pyramid (`images.py`). Slides whose caches are already valid are skipped,
so an interrupted run resumes where it stopped (each cache is written atomically).

    napari-stimage convert STimage-1K4M/                     # local processes (--jobs N)
    napari-stimage convert STimage-1K4M/ --scheduler tcp://host:8786   # on a Dask cluster

With `--scheduler` the slides run on an existing Dask distributed cluster (optional extra
`cluster`: `pip install napari-stimage[cluster]`); the workers must see ROOT and the cache
folder at the same paths (a shared filesystem), and have napari-stimage installed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .core.progress import CancelCallback, ProgressCallback
from .io.registry import find_slides
from .io.stimage.layout import SlidePaths


@dataclass
class SlideResult:
    name: str
    expression: str = "none"  # none | cached | built
    image: str = "none"  # none | lazy | small | cached | built
    seconds: float = 0.0
    error: str | None = None
    details: dict = field(default_factory=dict)


def _image_needs_pyramid(path: Path | None) -> bool:
    from .io.images import PYRAMID_MIN_PIXELS, image_shape, sniff_image_format

    if path is None or sniff_image_format(path) not in ("png", "jpeg"):
        return False
    shape = image_shape(path)
    return shape is not None and shape[0] * shape[1] >= PYRAMID_MIN_PIXELS


def slide_is_converted(paths: SlidePaths) -> bool:
    """True when every cache this slide needs exists and is valid (False when that cannot be
    told: the slide is then converted, and its error reported, like any other)."""
    from .io.cache import is_cache_valid
    from .io.images import pyramid_is_valid

    try:
        if paths.count is not None and not is_cache_valid(paths.count):
            return False
        return not (_image_needs_pyramid(paths.image) and not pyramid_is_valid(paths.image))
    except Exception:  # one odd slide must not stop a 1,149-slide run
        return False


def convert_slide(
    paths: SlidePaths,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> SlideResult:
    """Build the slide's missing or stale caches. Errors are returned, not raised."""
    from .io.cache import build_expression_cache, is_cache_valid
    from .io.images import ensure_pyramid, pyramid_is_valid, sniff_image_format

    result = SlideResult(paths.name)
    start = time.perf_counter()
    try:
        if paths.count is not None:
            if is_cache_valid(paths.count):
                result.expression = "cached"
            else:
                build_expression_cache(paths.count, progress=progress, cancel=cancel)
                result.expression = "built"
        if paths.image is not None:
            if sniff_image_format(paths.image) == "tiff":
                result.image = "lazy"
            elif not _image_needs_pyramid(paths.image):
                result.image = "small"
            elif pyramid_is_valid(paths.image):
                result.image = "cached"
            else:
                ensure_pyramid(paths.image, cancel=cancel)
                result.image = "built"
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # one bad slide must not stop a 1,149-slide run
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - start
    return result


def _convert_in_worker(paths: SlidePaths, cache_folder: str) -> SlideResult:
    """Entry point in a worker process or on a Dask worker: same cache folder as the caller."""
    from .io.cache import CACHE_ENV

    os.environ[CACHE_ENV] = cache_folder
    return convert_slide(paths)


class _Bar:
    """tqdm when available, else one line per slide on stderr."""

    def __init__(self, total: int, desc: str, enabled: bool = True):
        self.total, self.done, self.enabled = total, 0, enabled
        self._tqdm = None
        if enabled:
            try:
                from tqdm import tqdm

                self._tqdm = tqdm(total=total, desc=desc, unit="slide", file=sys.stderr)
            except ImportError:
                pass

    def update(self, text: str) -> None:
        self.done += 1
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(text[:60], refresh=False)
            self._tqdm.update(1)
        elif self.enabled:
            print(f"[{self.done}/{self.total}] {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()


def convert_tree(
    root: str | Path,
    jobs: int = 1,
    scheduler: str | None = None,
    show_progress: bool = True,
    on_result: Callable[[SlideResult], None] | None = None,
) -> list[SlideResult]:
    """Convert every slide under `root` not converted yet; returns one result per slide run.

    `jobs` > 1 runs that many local worker processes; `scheduler` (a Dask scheduler address,
    or a `distributed.Client`) runs the slides on a Dask cluster instead.
    """
    from .io.cache import cache_dir, remove_stale_temp_files_once

    remove_stale_temp_files_once()  # work folders of an earlier run that was killed
    # only STimage slides have caches to build; .h5ad, Space Ranger and SpatialData are read as they are
    slides = [s for s in find_slides(root) if isinstance(s, SlidePaths)]
    todo = [s for s in slides if not slide_is_converted(s)]
    skipped = len(slides) - len(todo)
    if show_progress:
        print(f"{len(slides)} slide(s) under {root}: {skipped} already converted, {len(todo)} to do", file=sys.stderr)
    bar = _Bar(len(todo), "converting", enabled=show_progress)
    results: list[SlideResult] = []
    folder = str(cache_dir())

    def record(result: SlideResult) -> None:
        results.append(result)
        status = f"{result.name}: " + (f"FAILED {result.error}" if result.error else
                                       f"expression {result.expression}, image {result.image}, {result.seconds:.1f} s")
        bar.update(status)
        if on_result is not None:
            on_result(result)

    try:
        if scheduler is not None:
            _run_on_dask(todo, folder, scheduler, record)
        elif jobs > 1 and len(todo) > 1:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(_convert_in_worker, s, folder) for s in todo]
                try:
                    for future in as_completed(futures):
                        record(future.result())
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
        else:
            for s in todo:
                record(convert_slide(s, progress=_byte_bar(s, show_progress)))
    finally:
        bar.close()
    return results


def _byte_bar(paths: SlidePaths, enabled: bool):
    """A per-slide progress(done, total) in bytes for big count files (a second tqdm line)."""
    if not enabled or paths.count is None or paths.count.stat().st_size < (256 << 20):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    bar = tqdm(total=paths.count.stat().st_size, desc=paths.name[:40], unit="B", unit_scale=True,
               leave=False, position=1, file=sys.stderr)

    def progress(done, total):
        bar.update(max(done - bar.n, 0))
        if done >= total:
            bar.close()

    return progress


def _run_on_dask(todo: list[SlidePaths], folder: str, scheduler, record) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise RuntimeError(
            "--scheduler needs dask distributed: pip install 'napari-stimage[cluster]'"
        ) from exc
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        futures = client.map(_convert_in_worker, todo, cache_folder=folder, pure=False)
        for future in as_completed(futures):
            record(future.result())
    finally:
        if client is not scheduler:
            client.close()


def _cmd_convert(args) -> int:
    if args.cache:
        from .io.cache import CACHE_ENV

        os.environ[CACHE_ENV] = str(Path(args.cache).expanduser().resolve())
    root = Path(args.root)
    if not root.exists():
        print(f"napari-stimage: {root}: no such folder", file=sys.stderr)
        return 2
    try:
        results = convert_tree(root, jobs=args.jobs, scheduler=args.scheduler)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume (finished slides are kept)", file=sys.stderr)
        return 130
    failed = [r for r in results if r.error]
    for r in failed:
        print(f"napari-stimage: {r.name}: {r.error}", file=sys.stderr)
    print(f"converted {len(results) - len(failed)} slide(s), {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a whole dataset tree into the cache (resumable)",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("root", help="dataset root, a technology folder, or a flat folder of slides")
    p.add_argument("--jobs", "-j", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--scheduler", default=None, help="address of a Dask distributed scheduler to run on")
    p.add_argument("--cache", default=None, help="cache folder (default: $NAPARI_STIMAGE_CACHE or the user cache)")
    p.set_defaults(func=_cmd_convert)
