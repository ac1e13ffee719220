"""Nothing read from a cache is trusted: random corruption, adversarial arrays with valid
checksums, odd meta.json, in-place source edits and concurrent builders all end in a correct load."""

import json
import multiprocessing
import os
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from napari_stimage.core.storage import TEMP_MARK, file_fingerprint
from napari_stimage.io import cache, images
from napari_stimage.io.cache import (
    CacheInvalid,
    build_expression_cache,
    expression_cache_path,
    is_cache_valid,
    load_cached_expression,
    load_expression_cached,
)
from test_cache import make_counts

CACHE_FILES = ["meta.json", *cache._ARRAY_FILES]
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A count file and a pristine copy of its cache folder's bytes."""
    folder = tmp_path_factory.mktemp("trust")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(cache.CACHE_ENV, str(folder / "cache"))
        path, counts = make_counts(folder)
        build_expression_cache(path)
        pristine = {name: (expression_cache_path(path) / name).read_bytes() for name in CACHE_FILES}
    return path, counts, pristine


def _restore(path, pristine, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(path.parent / "cache"))
    folder = expression_cache_path(path)
    for name, data in pristine.items():
        (folder / name).write_bytes(data)
    return folder


corruptions = st.tuples(
    st.sampled_from(CACHE_FILES),
    st.sampled_from(["flip", "truncate", "append", "zero"]),
    st.floats(0, 1),
    st.integers(1, 255),
)


@settings(FAST, max_examples=120)
@given(corruption=corruptions)
def test_random_corruption_of_any_cache_file_ends_in_the_right_matrix(built, monkeypatch, corruption):
    path, counts, pristine = built
    folder = _restore(path, pristine, monkeypatch)
    name, kind, where, value = corruption
    data = bytearray(pristine[name])
    at = min(int(where * len(data)), len(data) - 1)
    if kind == "flip":
        data[at] ^= value
    elif kind == "truncate":
        del data[at:]
    elif kind == "append":
        data += bytes([value]) * value
    else:
        data[at : at + value] = bytes(len(data[at : at + value]))
    (folder / name).write_bytes(bytes(data))
    changed = bytes(data) != pristine[name]
    assert is_cache_valid(path) == (not changed) or name == "meta.json"  # meta whitespace may not matter
    np.testing.assert_array_equal(load_expression_cached(path).matrix.toarray(), counts)
    assert is_cache_valid(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(FAST, max_examples=60)
@given(field=st.sampled_from([None, "shape", "nnz", "checksums", "fingerprint", "format", "version"]), value=json_values)
def test_meta_json_of_any_shape_or_type_is_a_corrupt_cache(built, monkeypatch, field, value):
    path, counts, pristine = built
    folder = _restore(path, pristine, monkeypatch)
    meta = json.loads(pristine["meta.json"])
    if field is None:
        meta = value  # [], null, 3, "x", {...}: not the meta object
    elif meta.get(field) == value:
        return
    else:
        meta[field] = value
    (folder / "meta.json").write_text(json.dumps(meta))
    assert not is_cache_valid(path)
    with pytest.raises(CacheInvalid):
        load_cached_expression(path)
    np.testing.assert_array_equal(load_expression_cached(path).matrix.toarray(), counts)


def _forge(folder, name, array):
    """Replace one array and re-sign meta.json, as a buggy writer would: checksums cannot help."""
    np.save(folder / name, array, allow_pickle=False)
    meta = json.loads((folder / "meta.json").read_text())
    meta["checksums"][name] = zlib.crc32((folder / name).read_bytes())
    (folder / "meta.json").write_text(json.dumps(meta))


@settings(FAST, max_examples=80)
@given(position=st.floats(0, 1), bad=st.integers(-(2**31), 2**31 - 1))
def test_out_of_range_row_indices_never_reach_scipy(built, monkeypatch, position, bad):
    path, counts, pristine = built
    folder = _restore(path, pristine, monkeypatch)
    indices = np.load(folder / "indices.npy").copy()
    at = min(int(position * len(indices)), len(indices) - 1)
    indices[at] = bad
    _forge(folder, "indices.npy", indices)
    if 0 <= bad < counts.shape[0]:
        load_cached_expression(path).matrix.toarray()  # in range: loads (values may differ)
    else:
        with pytest.raises(CacheInvalid, match="out of range"):
            load_cached_expression(path)


@settings(FAST, max_examples=40)
@given(position=st.integers(1, 24), delta=st.integers(-(10**6), 10**6).filter(bool))
def test_non_monotone_or_overflowing_column_pointers_are_refused(built, monkeypatch, position, delta):
    path, _, pristine = built
    folder = _restore(path, pristine, monkeypatch)
    indptr = np.load(folder / "indptr.npy").copy()
    indptr[position] += delta
    if np.all(np.diff(indptr) >= 0):
        return  # still a valid CSC layout (other counts, but nothing unsafe)
    _forge(folder, "indptr.npy", indptr)
    with pytest.raises(CacheInvalid):
        load_cached_expression(path)


@pytest.mark.parametrize("name,array", [
    ("indices.npy", np.zeros(3, dtype=np.int64)),
    ("indptr.npy", np.zeros(26, dtype=np.float64)),
    ("data.npy", np.zeros(5, dtype=np.float32)),
    ("spot_ids.npy", np.array(["a"])),
    ("total_counts.npy", np.zeros(2)),
])
def test_wrong_dtype_or_length_with_valid_checksum_is_refused(built, monkeypatch, name, array):
    path, _, pristine = built
    folder = _restore(path, pristine, monkeypatch)
    _forge(folder, name, array)
    with pytest.raises(CacheInvalid):
        load_cached_expression(path)


@pytest.mark.parametrize("where", ["first byte", "middle block", "between blocks", "last bytes"])
def test_fingerprint_sees_an_in_place_change_anywhere_in_a_large_file(tmp_path, where):
    from napari_stimage.core import storage

    last = (8 << 20) - storage.SAMPLE_BLOCK_BYTES
    starts = [last * i // (storage.SAMPLE_BLOCKS - 1) for i in range(storage.SAMPLE_BLOCKS)]
    offset = {"first byte": 0, "middle block": starts[16] + 5, "between blocks": starts[16] - 100,
              "last bytes": (8 << 20) - 10}[where]

    path = tmp_path / "big.csv"
    rng = np.random.default_rng(1)
    path.write_bytes(rng.integers(0, 256, 8 << 20, dtype=np.uint8).tobytes())
    before = file_fingerprint(path)
    st_ = os.stat(path)
    with open(path, "r+b") as fh:  # same size, mtime put back: only content (and ctime) differ
        fh.seek(offset)
        fh.write(b"X" * 10)
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns))
    after = file_fingerprint(path)
    assert after["size"] == before["size"] and after["mtime_ns"] == before["mtime_ns"]
    assert after != before  # ctime moves with every write, wherever it lands
    # content inside a sampled block (first and last bytes, the middle ...) changes the hash too
    assert (after["sampled_sha256"] != before["sampled_sha256"]) == (where != "between blocks")


def test_count_file_changed_in_place_with_same_size_and_mtime_is_rebuilt(tmp_path):
    path, _ = make_counts(tmp_path)
    load_expression_cached(path)
    st_ = os.stat(path)
    text = path.read_text().replace("s30,", "t30,")
    path.write_text(text)
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns))
    assert os.stat(path).st_size == st_.st_size and not is_cache_valid(path)
    assert "t30" in list(load_expression_cached(path).spot_ids)


def test_pyramid_gets_the_same_distrust(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "PYRAMID_MIN_PIXELS", 10_000)
    monkeypatch.setattr(images, "_pyramid_with_vips", lambda *a: (_ for _ in ()).throw(ImportError()))
    path = tmp_path / "big.png"
    rgb = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    images.read_image(path)
    tif = images.pyramid_cache_path(path)
    assert images.pyramid_is_valid(path)
    for damage in (b"[]", b"null", b'{"version": 1}', b"{"):
        saved = tif.with_suffix(".json").read_bytes()
        tif.with_suffix(".json").write_bytes(damage)
        assert not images.pyramid_is_valid(path)
        tif.with_suffix(".json").write_bytes(saved)
    data = bytearray(tif.read_bytes())
    st_ = os.stat(tif)
    data[len(data) // 2] ^= 0xFF
    tif.write_bytes(bytes(data))
    os.utime(tif, ns=(st_.st_atime_ns, st_.st_mtime_ns))
    assert not images.pyramid_is_valid(path)
    np.testing.assert_array_equal(np.asarray(images.read_image(path)[0][:]).shape, rgb.shape)
    assert images.pyramid_is_valid(path)


def _build_or_read(path, cache_folder, role, rounds, results):
    os.environ[cache.CACHE_ENV] = cache_folder
    try:
        for _ in range(rounds):
            if role == "builder":
                build_expression_cache(path)  # as `convert --jobs` does, whatever is there
            else:  # a viewer opening the slide: the finished cache must be there, every time
                results.put(float(load_cached_expression(path).matrix.sum()))
    except BaseException as exc:  # noqa: BLE001 -- reported to the test, which fails on it
        results.put(repr(exc))
    results.put("done")


def test_concurrent_builders_never_pull_a_finished_cache_from_under_readers(tmp_path, monkeypatch):
    path, counts = make_counts(tmp_path, n_spots=400, n_genes=60)
    folder = str(tmp_path / "shared-cache")
    monkeypatch.setenv(cache.CACHE_ENV, folder)
    build_expression_cache(path)
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    roles = ["builder"] * 3 + ["reader"] * 2
    procs = [ctx.Process(target=_build_or_read, args=(path, folder, role, 30, results)) for role in roles]
    for proc in procs:
        proc.start()
    outcomes, done = [], 0
    while done < len(procs):
        item = results.get(timeout=120)
        done += item == "done"
        if item != "done":
            outcomes.append(item)
    for proc in procs:
        proc.join(timeout=30)
    assert outcomes == [float(counts.sum())] * 60
    leftovers = [p.name for p in (tmp_path / "shared-cache").rglob("*") if TEMP_MARK in p.name]
    assert leftovers == []


def test_convert_goes_on_past_a_slide_with_a_non_object_meta(tmp_path):
    from napari_stimage.convert import convert_tree
    from napari_stimage.io.stimage.layout import find_slides
    from napari_stimage.synthetic import write_synthetic_slide

    root = tmp_path / "root"
    paths = write_synthetic_slide(root)
    for kind, suffix in (("coord", "_coord.csv"), ("count", "_count.csv"), ("image", ".png")):
        src = getattr(paths, kind)
        (src.parent / f"Other_Slide_Visium{suffix}").write_bytes(src.read_bytes())
    convert_tree(root, show_progress=False)
    first = find_slides(root)[0]
    (expression_cache_path(first.count) / "meta.json").write_text("[]")
    results = convert_tree(root, show_progress=False)
    assert [(r.name, r.expression, r.error) for r in results] == [(first.name, "built", None)]
    assert all(is_cache_valid(s.count) for s in find_slides(root))
