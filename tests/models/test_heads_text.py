import pytest
import torch
import torch.nn.functional as F

from mmv.models.heads import ProjectionHead, parse_head_mode
from mmv.models.text import TextTower


def test_parse_head_mode():
    assert parse_head_mode("linear") == ([], False)
    assert parse_head_mode("mlp@512") == ([512], True)
    assert parse_head_mode("mlp_nobn@64@32") == ([64, 32], False)
    for bad in ("mlp", "mlp@", "mlp@x", "conv@3", "mlp@-1"):
        with pytest.raises(ValueError):
            parse_head_mode(bad)


def test_bias_rules_of_the_release():
    linear_bn = ProjectionHead(8, 4, "linear", bn_out=True)
    assert linear_bn.proj.bias is not None and linear_bn.out_bn is not None  # linear keeps its bias
    mlp_bn = ProjectionHead(8, 4, "mlp@6", bn_out=True)
    assert mlp_bn.proj.bias is None and len(mlp_bn.inner_bn) == 1  # the BN offset replaces the bias
    mlp = ProjectionHead(8, 4, "mlp@6@5", bn_out=False)
    assert mlp.proj.bias is not None and len(mlp.inner) == 2 and mlp.out_bn is None
    assert len(ProjectionHead(8, 4, "mlp_nobn@6").inner_bn) == 0


def test_mlp_head_computes_linear_bn_relu_linear_bn():
    torch.manual_seed(0)
    head = ProjectionHead(6, 3, "mlp@5", bn_out=True).train()
    x = torch.randn(7, 6)
    h = F.relu(F.batch_norm(head.inner[0](x), None, None, head.inner_bn[0].weight,
                            head.inner_bn[0].bias, training=True, eps=1e-5))
    y = F.batch_norm(F.linear(h, head.proj.weight), None, None, head.out_bn.weight, head.out_bn.bias,
                     training=True, eps=1e-5)
    assert torch.allclose(head(x), y, atol=1e-6)


def test_head_on_k_narrations_equals_flattened():
    head = ProjectionHead(6, 3, "mlp@5", bn_out=True).eval()
    x = torch.randn(2, 4, 6)
    assert torch.allclose(head(x), head(x.reshape(8, 6)).reshape(2, 4, 3))


def test_text_tower_max_pools_without_mask():
    table = torch.zeros(5, 2)
    table[0] = torch.tensor([3.0, 0.0])  # the pad word's vector is large in dimension 0
    table[1] = torch.tensor([1.0, 1.0])
    tower = TextTower(5, 2, 2, word_vectors=table)
    with torch.no_grad():
        tower.proj.weight.copy_(torch.eye(2))
        tower.proj.bias.zero_()
    padded = torch.tensor([[1, 0, 0]])
    assert tower(padded).tolist() == [[3.0, 1.0]]  # the pad id takes part in the max, as released
    assert tower(torch.tensor([[1, 1, 1]])).tolist() == [[1.0, 1.0]]
    # K candidate narrations per clip
    assert tower(torch.tensor([[[1, 0], [1, 1]]])).tolist() == [[[3.0, 1.0], [1.0, 1.0]]]


def test_text_tower_word_table_is_frozen_and_checked():
    tower = TextTower(10, 4, 8)
    assert not tower.embed.weight.requires_grad
    out = tower(torch.tensor([[1, 2, 3]]))
    out.sum().backward()
    assert tower.embed.weight.grad is None and tower.proj.weight.grad is not None
    with pytest.raises(ValueError, match=r"word ids must lie in \[0, 10\)"):
        tower(torch.tensor([[1, 10]]))
    with pytest.raises(TypeError, match="int64"):
        tower(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="do not fit"):
        tower.set_word_vectors(torch.zeros(9, 4))
