"""``vqladder.text.sweep_report``: each cell beside its local twin, by the accuracy that is a reconstruction."""



def test_autoregressive_cells_are_compared_by_their_free_running_accuracy():
    from vqladder.text.sweep_report import local_rows

    base = {"out_len": 16, "codebook_size": 256, "kind": "fsq", "depth": 1}
    groups = [{**base, "arch": "pool", "decoder": "autoregressive", "acc": 0.9, "acc_free": 0.2},
              {**base, "arch": "pool", "decoder": "parallel", "acc": 0.3, "acc_free": ""},
              {**base, "arch": "local", "decoder": "parallel", "acc": 0.25, "acc_free": ""}]
    deltas = {r["group"]["decoder"]: round(r["delta"], 3) for r in local_rows(groups)}
    assert deltas == {"autoregressive": -0.05, "parallel": 0.05}  # teacher-forced 0.9 would have read +0.65
