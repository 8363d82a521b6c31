"""The end of a distributed run: barrier, then the process group is destroyed (a no-op without one)."""

import socket

import torch.distributed as dist

from tac_ecg_hf.distributed import end_distributed_run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_without_a_process_group_it_does_nothing():
    assert not dist.is_initialized()
    end_distributed_run()
    assert not dist.is_initialized()


def test_the_process_group_is_destroyed():
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        assert dist.is_initialized()
        end_distributed_run()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
