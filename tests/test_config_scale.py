"""What makes 10,000 replicas cheap must not change a value: shared evaluation and partial resource values."""

from __future__ import annotations

from orchdsl.config import evaluate_outputs, expand, load_config
from orchdsl.eval.plain import UNKNOWN


def _config(tmp_path, text):
    (tmp_path / "main.orch").write_text(text)
    cfg, diags = load_config(tmp_path, env={})
    assert not [d for d in diags if d.is_error], diags
    return cfg


POD = """
pod "web" {
  replicas = 3
  container "c" {
    image = "i"
    env   = { A = "x", %s }
  }
}
"""


def test_replicas_without_count_index_share_values_but_not_objects(tmp_path):
    cfg = _config(tmp_path, POD % 'B = upper("y")')
    instances, _ = expand(next(iter(cfg.resources.values())), {})
    assert [i.values["name"] for i in instances] == ["web-0", "web-1", "web-2"]
    assert all(i.values["container"] == instances[0].values["container"] for i in instances)
    instances[0].values["container"][0]["env"]["A"] = "changed"  # each instance owns its values
    assert instances[1].values["container"][0]["env"]["A"] == "x"


def test_replicas_with_count_index_are_evaluated_each(tmp_path):
    cfg = _config(tmp_path, POD % 'B = "n${count.index}"')
    instances, _ = expand(next(iter(cfg.resources.values())), {})
    assert [i.values["container"][0]["env"]["B"] for i in instances] == ["n0", "n1", "n2"]


def test_an_output_indexing_one_instance_sees_it_and_whole_references_see_all(tmp_path):
    cfg = _config(tmp_path, POD % 'B = "b"' + """
output "one" {
  value = pod.web[1].ip
}
output "all" {
  value = pod.web[*].ip
}
output "n" {
  value = length(pod.web)
}
""")
    caddr = next(iter(cfg.resources))
    ctx = {caddr: [{"name": f"web-{i}", "ip": f"198.19.0.{i}"} for i in range(3)]}
    outs, diags = evaluate_outputs(cfg, ctx)
    assert not [d for d in diags if d.is_error]
    assert outs["one"].value == "198.19.0.1"
    assert outs["all"].value == ["198.19.0.0", "198.19.0.1", "198.19.0.2"]
    assert outs["n"].value == 3
    outs, _ = evaluate_outputs(cfg, {caddr: [{"name": "web-0"}, {"name": "web-1"}, {"name": "web-2"}]})
    assert outs["one"].value is UNKNOWN
