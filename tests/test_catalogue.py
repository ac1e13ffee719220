import csv
import io
import json

import pandas as pd
import pytest

from napari_stimage.cli import main as cli_main
from napari_stimage.core.errors import SlideError
from napari_stimage.io.catalogue import load_catalogue, tissue_parts

META = "meta_all_gene02122025.csv"


@pytest.fixture
def real_meta(real_data):
    return real_data / META


def test_real_meta_table_counts(real_meta):
    cat = load_catalogue(real_meta)
    assert len(cat) == 1149
    assert cat.filter_mask(tech="VisiumHD").sum() == 4
    assert cat.filter_mask(species="human", tissue="brain").sum() == 90
    assert cat.filter_mask(cancer=True).sum() == 456
    # nothing of a bare meta table is on disk, and it says what is missing
    assert not cat.table["on_disk"].any()
    assert set(cat.table["missing"]) == {"coord, count, image"}


def test_tab_separated_copy_gives_the_same_rows(real_meta, tmp_path):
    original = pd.read_csv(real_meta, dtype=str, keep_default_na=False)
    tab_copy = tmp_path / "meta_all.csv"
    original.to_csv(tab_copy, sep="\t", index=False, quoting=csv.QUOTE_MINIMAL)
    a, b = load_catalogue(real_meta).table, load_catalogue(tab_copy).table
    assert len(b) == 1149
    pd.testing.assert_frame_equal(a, b)


def test_tissue_synonyms_and_combinations_match_each_part(real_meta):
    cat = load_catalogue(real_meta)
    tissue = cat.table["tissue"]
    assert cat.filter_mask(tissue="lymph node").sum() == tissue.isin(["lymph node", "lymphnode"]).sum()
    assert cat.filter_mask(tissue="lymphnode").sum() == cat.filter_mask(tissue="lymph node").sum()
    colon = tissue.isin(["colon", "colorectal", "largeintestine", "mouse colon and human skin"]).sum()
    assert cat.filter_mask(tissue="colorectal").sum() == colon
    kidney = cat.filter(tissue="kidney")
    assert "brain+kidney" in set(kidney["tissue"]) and "kidney" in set(kidney["tissue"])
    assert tissue_parts("mouse heart and human skin") == {"heart", "skin"}
    assert "lymphnode" not in cat.choices("tissue") and "lymph node" in cat.choices("tissue")


def test_text_search_needs_every_word_over_title_keywords_abstract(real_meta):
    cat = load_catalogue(real_meta)
    both = cat.filter(search="squamous MIBI")
    assert len(both) > 0
    assert all("squamous" in t.lower() or "squamous" in k.lower() or "squamous" in a.lower()
               for t, k, a in zip(both["title"], both["keywords"], both["abstract"], strict=True))
    assert len(cat.filter(search="squamous zzzznotaword")) == 0
    assert len(cat.filter(search="GSE144239_GSM4284316")) == 1


def _write_tree(root, meta_rows, on_disk):
    (root / "meta").mkdir(parents=True)
    header = ["slide", "species", "tissue", "pmid", "title", "abstract", "keywords", "involve_cancer",
              "tech", "spot_num", "gene_num"]
    with open(root / "meta" / META, "w", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL)
        w.writerow(header)
        for row in meta_rows:
            w.writerow([row.get(h, "") for h in header])
    for name, tech, kinds in on_disk:
        for kind, sub, suffix in (("coord", "coord", "_coord.csv"), ("count", "gene_exp", "_count.csv"),
                                  ("image", "image", ".png")):
            if kind in kinds:
                (root / tech / sub).mkdir(parents=True, exist_ok=True)
                (root / tech / sub / f"{name}{suffix}").write_text("x")
        if "anno" in kinds:
            (root / "annotation").mkdir(exist_ok=True)
            (root / "annotation" / f"{name}_anno.csv").write_text("x")


def test_generated_tree_flags_on_disk_missing_and_unlisted(tmp_path):
    root = tmp_path / "STimage-1K4M"
    rows = [
        {"slide": "Human_Breast_A1", "species": "human", "tissue": "breast", "tech": "ST", "spot_num": "300",
         "involve_cancer": "True", "abstract": "line one\nline two, with a comma"},
        {"slide": "Mouse_Brain+Kidney_10X_Visium", "species": "mouse", "tissue": "brain+kidney", "tech": "Visium"},
        {"slide": "Gone_Slide", "species": "human", "tissue": "lymphnode", "tech": "Visium"},
    ]
    _write_tree(root, rows, [
        ("Human_Breast_A1", "ST", {"coord", "count", "image", "anno"}),
        ("Mouse_Brain+Kidney_10X_Visium", "Visium", {"coord", "image"}),
        ("Unlisted_Slide_VisiumHD", "VisiumHD", {"coord", "count", "image"}),
    ])
    cat = load_catalogue(root)
    t = cat.table.set_index("slide")
    assert list(t.index) == ["Human_Breast_A1", "Mouse_Brain+Kidney_10X_Visium", "Gone_Slide",
                             "Unlisted_Slide_VisiumHD"]
    assert t.loc["Human_Breast_A1", "on_disk"] and t.loc["Human_Breast_A1", "annotated"]
    assert t.loc["Human_Breast_A1", "abstract"] == "line one\nline two, with a comma"
    assert not t.loc["Mouse_Brain+Kidney_10X_Visium", "on_disk"]
    assert t.loc["Mouse_Brain+Kidney_10X_Visium", "missing"] == "count"
    assert t.loc["Gone_Slide", "missing"] == "coord, count, image"
    assert t.loc["Unlisted_Slide_VisiumHD", "on_disk"] and t.loc["Unlisted_Slide_VisiumHD", "tech"] == "VisiumHD"
    assert list(cat.filter(on_disk=True, tissue="kidney")["slide"]) == []
    assert list(cat.filter(annotated=True)["slide"]) == ["Human_Breast_A1"]
    assert list(cat.filter(tissue="lymph node")["slide"]) == ["Gone_Slide"]


def test_hest_tree_from_json_metadata_with_bare_nan(tmp_path):
    root = tmp_path / "hest"
    (root / "metadata").mkdir(parents=True)
    (root / "st").mkdir()
    for sid, organ, onco in (("TENX95", "Breast", "IDC"), ("MISC1", "Brain", float("nan"))):
        (root / "metadata" / f"{sid}.json").write_text(json.dumps({
            "id": sid, "organ": organ, "oncotree_code": onco, "species": "Homo sapiens",
            "st_technology": "Visium", "pixel_size_um_estimated": 0.27,
            "disease_state": "Cancer" if onco == "IDC" else "Healthy",
        }))  # json.dumps writes NaN bare, as HEST's files have it
    (root / "st" / "TENX95.h5ad").write_text("x")
    assert "NaN" in (root / "metadata" / "MISC1.json").read_text()
    cat = load_catalogue(root)
    t = cat.table.set_index("slide")
    assert set(t["dataset"]) == {"HEST-1k"}
    assert t.loc["TENX95", "on_disk"] and not t.loc["MISC1", "on_disk"]
    assert t.loc["MISC1", "missing"] == "expression"
    assert t.loc["MISC1", "oncotree_code"] == ""
    assert list(cat.filter(cancer=True)["slide"]) == ["TENX95"]
    assert list(cat.filter(tissue="brain")["slide"]) == ["MISC1"]


def test_hest_metadata_csv(tmp_path):
    root = tmp_path / "hest"
    root.mkdir()
    pd.DataFrame({
        "dataset_title": ["Study A", "Study B"], "id": ["NCBI1", "SPA2"], "organ": ["Bowel", "Lymph node"],
        "oncotree_code": ["COAD", ""], "species": ["Homo sapiens", "Mus musculus"],
        "st_technology": ["Visium HD", "Xenium"], "spots_under_tissue": [1200, 800], "nb_genes": [18000, 541],
    }).to_csv(root / "HEST_v1_1_0.csv", index=False)
    cat = load_catalogue(root)
    assert list(cat.table["slide"]) == ["NCBI1", "SPA2"]
    assert cat.filter(tissue="lymphnode")["slide"].tolist() == ["SPA2"]
    assert cat.filter(tech="xenium")["spots"].tolist() == [800]
    assert cat.filter(species="mouse")["slide"].tolist() == ["SPA2"]  # Mus musculus


def test_bad_meta_table_names_the_file(tmp_path):
    bad = tmp_path / "meta_all_gene.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(SlideError, match="meta_all_gene.csv"):
        load_catalogue(bad)
    with pytest.raises(SlideError, match="no such dataset folder"):
        load_catalogue(tmp_path / "absent")


def test_slides_command_filters_and_prints_csv(real_meta, capsys):
    assert cli_main(["slides", str(real_meta), "--species", "human", "--tissue", "brain", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    printed = pd.read_csv(io.StringIO(out), dtype=str, keep_default_na=False)
    assert len(printed) == 90 and set(printed["tissue"]) == {"brain"}
    assert cli_main(["slides", str(real_meta), "--tech", "VisiumHD"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split()[:3] == ["slide", "tech", "species"]
    assert len(lines) == 5 and all("VisiumHD" in line for line in lines[1:])
    assert "4 of 1149 slides" in captured.err
