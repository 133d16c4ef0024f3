from kv.merkle import FANOUT, node_buckets, node_children, node_hash, tree_depth, xor_hex


def test_the_tree_has_three_levels_below_the_root_for_4096_buckets():
    assert tree_depth() == 3
    assert node_buckets(0, 0) == range(4096)
    assert node_buckets(1, 2) == range(512, 768)
    assert node_buckets(3, 77) == range(77, 78)
    assert list(node_children(5)) == list(range(5 * FANOUT, 6 * FANOUT))


def test_a_node_hash_is_the_xor_of_its_leaves():
    leaves = {0: "1" * 32, 255: "2" * 32, 256: "4" * 32}
    assert node_hash(leaves, 1, 0) == xor_hex("1" * 32, "2" * 32)
    assert node_hash(leaves, 1, 1) == "4" * 32
    assert node_hash(leaves, 0, 0) == xor_hex(*leaves.values())
    assert node_hash(leaves, 1, 2) == "0" * 32
