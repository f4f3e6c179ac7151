"""The peer of rnnexp's studies for benchmarks/study_bench.py: a plain Hydra app trained with plain
torch, swept by the official hydra-optuna-sweeper 1.3.0 and Hydra's basic launcher.

The workload is rnnexp's: one-hot "edgement"[:-1] -> nn.RNN(V, 5) -> nn.Linear(5, V), targets
"edgement"[1:], cross-entropy, torch.optim.RMSprop(lr, alpha), 100 full-batch epochs from h_0 = 0,
float64, one thread, weights seeded from `seed`. The job returns the final loss.

    benchmarks/.peer-venv/bin/python benchmarks/peer_app/app.py -m \
        hydra.sweeper.n_trials=8 out=/tmp/peer
"""
import hydra
import torch
from omegaconf import DictConfig
from torch import nn


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    torch.set_num_threads(1)
    word = cfg.word
    vocab = sorted(set(word))
    ids = torch.tensor([vocab.index(c) for c in word])
    x = nn.functional.one_hot(ids[:-1], len(vocab)).to(torch.float64).unsqueeze(0)
    y = ids[1:]
    torch.manual_seed(cfg.seed)
    rnn = nn.RNN(len(vocab), cfg.hidden_size, batch_first=True).to(torch.float64)
    fc = nn.Linear(cfg.hidden_size, len(vocab)).to(torch.float64)
    opt = torch.optim.RMSprop([*rnn.parameters(), *fc.parameters()], lr=cfg.lr, alpha=cfg.alpha)
    loss = torch.tensor(float("nan"))
    for _ in range(cfg.epochs):
        opt.zero_grad()
        out, _ = rnn(x)
        loss = nn.functional.cross_entropy(fc(out[0]), y)
        loss.backward()
        opt.step()
    return loss.item()


if __name__ == "__main__":
    main()
