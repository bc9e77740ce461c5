#!/usr/bin/env python3
"""The GpuCheck models in plain PyTorch: the reference the library's CUDA numbers are read against.

Same data and rows as GpuCheck (the first --limit rows of the Fashion-MNIST t10k split and of SMS spam, each split in
order: the first 80 % train, the rest test), same networks, batch sizes, optimizers, learning rates, schedules,
gradient clipping, standardisation and epochs as the library's defaults (src/Microsoft.ML.DeepExtensions/Models/*/ and
Core/DeepTrainerOptions.cs), ValidationFraction = 0 like GpuCheck. Prints per model the median epoch seconds (first
epoch dropped) and the test accuracy, then one JSON line.

    python3 pytorch_reference.py --device cpu|cuda [--limit N] [--epochs N] [--data DIR] [--sms FILE]
                                 [--families mlp,cnn,lstm,transformer] [--seed N] [--threads N] [--json FILE]
    python3 pytorch_reference.py --prepare-only ...   # data and vocabulary only; does not import torch

Library defaults mirrored here (per family):
    mlp          784-256-128-10, ReLU, dropout 0.1; Adam 1e-3, batch 128, 10 epochs; per-pixel standardisation
    cnn          2 x [conv3x3 same (32, 64) + BatchNorm + ReLU + maxpool 2], dense 128 (ReLU, dropout 0.3);
                 Adam 1e-3, batch 128, 5 epochs; one mean/std for all pixels
    lstm         tokens (max 100) -> embedding 64 (padding 0, unknown V+1, word dropout 0.1) -> packed LSTM 64
                 -> last state -> 1 logit; Adam 2e-3, batch 64, clip 1, 10 epochs
    transformer  tokens (max 64) + [CLS] -> embedding 64 + sinusoidal positions, dropout 0.1, 2 pre-norm encoder
                 layers (4 heads, GELU feed-forward 128, attention dropout 0.1), final LayerNorm -> [CLS] -> 1 logit;
                 AdamW 2e-3 (weight decay 0.01), 1 warm-up epoch then cosine (per epoch), clip 1, batch 32, 8 epochs
Tokens as ML.NET makes them: NormalizeText (lower case, no diacritics, no punctuation, numbers kept) ->
TokenizeIntoWords (split on spaces) -> MapValueToKey (keys 1..V in order of first occurrence in the training rows).
"""
import argparse
import gzip
import json
import math
import os
import statistics
import sys
import time
import unicodedata

FAMILIES = ["mlp", "cnn", "lstm", "transformer"]
DEFAULT_EPOCHS = {"mlp": 10, "cnn": 5, "lstm": 10, "transformer": 8}
HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv):
    p = argparse.ArgumentParser(description="GpuCheck's models in plain PyTorch.")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--limit", type=int, default=None, help="rows read from each data set (default: all)")
    p.add_argument("--epochs", type=int, default=None, help="epochs for every model (default: each family's default)")
    p.add_argument("--data", default=None, help="Fashion-MNIST IDX folder (t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])")
    p.add_argument("--sms", default=None, help="SMS spam collection (ham|spam<TAB>text)")
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the JSON line to this file")
    p.add_argument("--prepare-only", action="store_true", help="load and tokenise the data, print its statistics, stop")
    a = p.parse_args(argv)
    a.families = [f.strip() for f in a.families.split(",") if f.strip()]
    if not a.families or any(f not in FAMILIES for f in a.families):
        p.error("--families takes a comma-separated list of " + ", ".join(FAMILIES))
    if a.epochs is not None and a.epochs < 2:
        p.error("--epochs needs at least 2 (the first epoch is warm-up and dropped)")
    if a.limit is not None and a.limit < 1:
        p.error("--limit must be positive")
    return a


# ---------------------------------------------------------------------------------------------------------- data

def _idx_path(directory, split, kind):
    stem = os.path.join(directory, "%s-%s-idx%d-ubyte" % (split, kind, 3 if kind == "images" else 1))
    return stem + ".gz" if os.path.exists(stem + ".gz") else stem


def read_idx(path, dims, limit):
    """(count, item size, bytes of the first `limit` items) of an IDX file of unsigned bytes."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        header = f.read(4 * (1 + dims))
        magic = int.from_bytes(header[0:4], "big")
        if magic != 0x800 + dims:
            raise ValueError("%s is not an IDX file of unsigned bytes with %d dimension(s) (magic 0x%X)" % (path, dims, magic))
        count = int.from_bytes(header[4:8], "big")
        size = 1
        for i in range(1, dims):
            size *= int.from_bytes(header[4 + 4 * i:8 + 4 * i], "big")
        n = count if limit is None else min(count, limit)
        data = f.read(n * size)
        if len(data) != n * size:
            raise ValueError("%s is truncated" % path)
        return n, size, data


def find_fashion(directory):
    candidates = [directory] if directory else [
        os.environ.get("FASHION_MNIST_DIR") or "",
        os.path.join(HERE, "data", "fashion-mnist"),          # inside the unpacked kit
        os.path.join(HERE, "..", "..", "data", "fashion-mnist"),  # tools/gpu in the repository
        "/usr/share/datasets/fashion-mnist",
    ]
    for d in candidates:
        if d and os.path.exists(_idx_path(d, "t10k", "images")) and os.path.exists(_idx_path(d, "t10k", "labels")):
            return d
    raise FileNotFoundError("Fashion-MNIST t10k was not found; pass --data DIR (the repository's data/fashion-mnist)")


def load_fashion(directory, limit):
    d = find_fashion(directory)
    n, size, pixels = read_idx(_idx_path(d, "t10k", "images"), 3, limit)
    m, _, labels = read_idx(_idx_path(d, "t10k", "labels"), 1, limit)
    if n != m or size != 784:
        raise ValueError("Fashion-MNIST t10k: %d images of %d pixels but %d labels" % (n, size, m))
    train = n * 8 // 10
    return {"dir": d, "rows": n, "train": train, "pixels": pixels, "labels": labels}


def find_sms(path):
    candidates = [path] if path else [
        os.path.join(HERE, "data", "sms-spam", "SMSSpamCollection"),
        os.path.join(HERE, "..", "..", "..", "shared", "data", "sms-spam", "SMSSpamCollection"),
        "/work/shared/data/sms-spam/SMSSpamCollection",
    ]
    for c in candidates:
        if c and os.path.isfile(c):
            return c
    raise FileNotFoundError("SMS spam was not found; pass --sms FILE (tab-separated ham|spam<TAB>text)")


def normalize_text(text):
    """ML.NET NormalizeText(keepPunctuations: false): lower case, diacritics removed, punctuation removed, numbers kept."""
    out = []
    for ch in text.lower():
        decomposed = unicodedata.normalize("NFD", ch)
        for c in decomposed:
            cat = unicodedata.category(c)
            if cat == "Mn" or cat.startswith("P"):
                continue
            out.append(c)
    return "".join(out)


def load_sms(path, limit):
    file = find_sms(path)
    rows = []
    with open(file, "r", encoding="utf-8", newline="\n") as f:
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            parts = line.split("\t")
            rows.append((parts[0], parts[1] if len(parts) > 1 else ""))
            if limit is not None and len(rows) >= limit:
                break
    n = len(rows)
    train = n * 8 // 10
    tokens = [[t for t in normalize_text(text).split(" ") if t] for _, text in rows]
    vocab = {}
    for seq in tokens[:train]:                      # MapValueToKey: keys 1..V by first occurrence in the training rows
        for t in seq:
            if t not in vocab:
                vocab[t] = len(vocab) + 1
    unknown = len(vocab) + 1
    ids = [[vocab.get(t, unknown) for t in seq] or [unknown] for seq in tokens]   # an empty row is one unknown token
    labels = [1.0 if c == "spam" else 0.0 for c, _ in rows]
    return {"file": file, "rows": n, "train": train, "vocab": len(vocab), "ids": ids, "labels": labels}


# ---------------------------------------------------------------------------------------------------------- models

def build(torch, family, vocab_size, max_len):
    nn = torch.nn
    F = torch.nn.functional

    class Standardize(nn.Module):
        def __init__(self, mean, std):
            super().__init__()
            self.register_buffer("mean", mean)
            self.register_buffer("scale", torch.where(std > 1e-8, 1.0 / std.clamp_min(1e-30), torch.ones_like(std)))

        def forward(self, x):
            return (x - self.mean) * self.scale

    if family == "mlp":
        return nn.Sequential(
            nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(128, 10)), Standardize

    if family == "cnn":
        class ToImage(nn.Module):
            def forward(self, x):
                return x.view(-1, 1, 28, 28)
        return nn.Sequential(
            ToImage(),
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(128, 10)), Standardize

    rows = vocab_size + 2          # padding 0, keys 1..V, unknown V+1
    unknown = vocab_size + 1

    def token_batch(x):
        """[B, MaxLength] float ids -> int64 ids, lengths, mask, trimmed to the batch's longest row (TokenBatch.From)."""
        ids = x.to(torch.int64)
        mask = ids.ne(0)
        lengths = mask.sum(1)
        longest = max(1, int(lengths.max().item()))
        if longest < ids.shape[1]:
            ids, mask = ids[:, :longest], mask[:, :longest]
        return ids, lengths, mask

    if family == "lstm":
        class Lstm(nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = nn.Embedding(rows, 64, padding_idx=0)
                self.rnn = nn.LSTM(64, 64, 1, batch_first=True)
                self.head = nn.Sequential(nn.Linear(64, 1))

            def forward(self, x):
                ids, lengths, mask = token_batch(x)
                if self.training:              # word dropout (UnknownTokenRate 0.1)
                    drop = torch.rand(ids.shape, device=ids.device).lt(0.1).logical_and(mask)
                    ids = ids.masked_fill(drop, unknown)
                packed = nn.utils.rnn.pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
                _, (h, _) = self.rnn(packed)
                return self.head(h[-1])
        return Lstm(), None

    d, heads, ff, drop_p, attn_p, layers = 64, 4, 128, 0.1, 0.1, 2
    positions = max_len + 1        # + [CLS]

    def sinusoids(n, dim):
        table = torch.zeros(n, dim)
        for p in range(n):
            for i in range(0, dim, 2):
                angle = p / math.pow(10000, i / dim)
                table[p, i] = math.sin(angle)
                table[p, i + 1] = math.cos(angle)
        return table

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)

        def forward(self, x, keep):
            b, t, _ = x.shape
            dh = d // heads
            parts = self.qkv(x).view(b, t, 3, heads, dh).permute(2, 0, 3, 1, 4)
            q, k, v = parts[0], parts[1], parts[2]
            scores = q.matmul(k.transpose(-2, -1)) / math.sqrt(dh)
            scores = scores.masked_fill(keep.logical_not().view(b, 1, 1, t), float("-inf"))
            w = scores.softmax(-1)
            attended = F.dropout(w, attn_p, self.training).matmul(v)
            return self.proj(attended.transpose(1, 2).reshape(b, t, d))

    class EncoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = SelfAttention()
            self.norm1 = nn.LayerNorm(d)
            self.norm2 = nn.LayerNorm(d)
            self.ff1 = nn.Linear(d, ff)
            self.ff2 = nn.Linear(ff, d)

        def forward(self, x, keep):
            h = x + F.dropout(self.attention(self.norm1(x), keep), drop_p, self.training)
            f = self.ff2(F.dropout(F.gelu(self.ff1(self.norm2(h))), drop_p, self.training))
            return h + F.dropout(f, drop_p, self.training)

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(rows, d, padding_idx=0)
            self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
            self.register_buffer("sinusoids", sinusoids(positions, d), persistent=False)
            self.layers = nn.ModuleList([EncoderLayer() for _ in range(layers)])
            self.final_norm = nn.LayerNorm(d)
            self.output = nn.Linear(d, 1)

        def forward(self, x):
            ids, _, keep = token_batch(x)
            h = self.embedding(ids)
            b = h.shape[0]
            h = torch.cat([self.cls.expand(b, 1, d), h], 1)
            keep = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=x.device), keep], 1)
            h = h + self.sinusoids[: h.shape[1]]
            h = F.dropout(h, drop_p, self.training)
            for layer in self.layers:
                h = layer(h, keep)
            return self.output(self.final_norm(h)[:, 0])
    return Transformer(), None


class Network:
    """The module with its input standardisation (DeepNetwork: x -> (x - mean) * scale -> module)."""

    def __init__(self, torch, module, standardize):
        self.module = module
        self.standardize = standardize
        self.torch = torch

    def __call__(self, x):
        return self.module(self.standardize(x) if self.standardize is not None else x)

    def modules(self):
        return [m for m in (self.standardize, self.module) if m is not None]

    def train(self, on=True):
        for m in self.modules():
            m.train(on)

    def to(self, device):
        for m in self.modules():
            m.to(device)
        return self


def cosine_rate(base, epoch, epochs, warmup=1, minimum=0.0):
    """CosineSchedule.Rate for 0-based `epoch` (one warm-up epoch, then cosine to 0)."""
    if epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    span = max(1, epochs - warmup)
    return minimum + (base - minimum) * 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / span))


def run_family(torch, family, args, fashion, sms, device):
    F = torch.nn.functional
    epochs = args.epochs or DEFAULT_EPOCHS[family]
    torch.manual_seed(args.seed)
    if family in ("mlp", "cnn"):
        n, train = fashion["rows"], fashion["train"]
        x = torch.frombuffer(bytearray(fashion["pixels"]), dtype=torch.uint8).to(torch.float32).div_(255.0).view(n, 784)
        y = torch.frombuffer(bytearray(fashion["labels"]), dtype=torch.uint8).to(torch.int64)
        x_train, y_train, x_test, y_test = x[:train], y[:train], x[train:], y[train:]
        if family == "mlp":             # per-pixel mean and population deviation
            mean, std = x_train.mean(0), x_train.std(0, correction=0)
        else:                           # pixels share one scale
            mean = x_train.mean().expand(784).clone()
            std = x_train.std(correction=0).expand(784).clone()
        module, standardize_class = build(torch, family, 0, 0)
        net = Network(torch, module, standardize_class(mean, std))
        batch, lr, clip = 128, 1e-3, None
        optimizer = torch.optim.Adam(module.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=0)
        data_name = "fashion-mnist"
        multiclass = True
    else:
        max_len = 100 if family == "lstm" else 64
        n, train = sms["rows"], sms["train"]
        x = torch.zeros(n, max_len)
        for i, seq in enumerate(sms["ids"]):
            seq = seq[:max_len]          # SequenceOverflow.Truncate: the first tokens
            x[i, : len(seq)] = torch.tensor(seq, dtype=torch.float32)
        y = torch.tensor(sms["labels"], dtype=torch.float32)
        x_train, y_train, x_test, y_test = x[:train], y[:train], x[train:], y[train:]
        module, _ = build(torch, family, sms["vocab"], max_len)
        net = Network(torch, module, None)
        if family == "lstm":
            batch, lr, clip = 64, 2e-3, 1.0
            optimizer = torch.optim.Adam(module.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=0)
        else:
            batch, lr, clip = 32, 2e-3, 1.0
            optimizer = torch.optim.AdamW(module.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=0.01)
        data_name = "sms-spam"
        multiclass = False

    net.to(device)
    x_train, y_train, x_test, y_test = x_train.to(device), y_train.to(device), x_test.to(device), y_test.to(device)
    params = list(module.parameters())
    rows = x_train.shape[0]
    shuffle = torch.Generator().manual_seed(args.seed)

    def loss_of(out, target):
        return F.cross_entropy(out, target) if multiclass else F.binary_cross_entropy_with_logits(out.reshape(-1), target)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    seconds, losses = [], []
    fit_start = time.perf_counter()
    for epoch in range(epochs):
        sync()
        start = time.perf_counter()
        rate = cosine_rate(lr, epoch, epochs) if family == "transformer" else lr
        for g in optimizer.param_groups:
            g["lr"] = rate
        net.train(True)
        perm = torch.randperm(rows, generator=shuffle).to(device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        for s in range(0, rows, batch):
            idx = perm[s: s + batch]
            xb, yb = x_train.index_select(0, idx), y_train.index_select(0, idx)
            optimizer.zero_grad()
            loss = loss_of(net(xb), yb)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            loss_sum += loss.detach().to(torch.float64) * xb.shape[0]
        losses.append(loss_sum.item() / max(rows, 1))   # reads the loss back, as the library does at an epoch's end
        sync()
        seconds.append(time.perf_counter() - start)
    fit = time.perf_counter() - fit_start

    score_start = time.perf_counter()
    net.train(False)
    correct = 0
    with torch.no_grad():
        for s in range(0, x_test.shape[0], max(batch, 1024)):
            out = net(x_test[s: s + max(batch, 1024)])
            target = y_test[s: s + max(batch, 1024)]
            pred = out.argmax(1) if multiclass else (out.reshape(-1) > 0).to(torch.float32)
            correct += int(pred.eq(target).sum().item())
    score = time.perf_counter() - score_start
    test_rows = x_test.shape[0]
    return {
        "family": family, "data": data_name, "train_rows": rows, "test_rows": test_rows, "epochs": epochs,
        "epoch_seconds": [round(v, 5) for v in seconds],
        "median_epoch_seconds": round(statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0], 5),
        "fit_seconds": round(fit, 3), "score_seconds": round(score, 3),
        "accuracy": round(correct / max(test_rows, 1), 5), "final_train_loss": round(losses[-1], 5),
    }


def main(argv):
    args = parse_args(argv)
    total = time.perf_counter()
    report = {"tool": "pytorch_reference", "device": args.device, "seed": args.seed, "limit": args.limit,
              "epochs": args.epochs if args.epochs else "defaults", "results": [], "errors": []}
    fashion = sms = None
    if any(f in ("mlp", "cnn") for f in args.families):
        fashion = load_fashion(args.data, args.limit)
        print("Fashion-MNIST: %s t10k, %d rows: the first %d train, the last %d test"
              % (fashion["dir"], fashion["rows"], fashion["train"], fashion["rows"] - fashion["train"]), flush=True)
    if any(f in ("lstm", "transformer") for f in args.families):
        sms = load_sms(args.sms, args.limit)
        print("SMS spam: %s, %d messages: the first %d train, the last %d test; vocabulary %d words"
              % (sms["file"], sms["rows"], sms["train"], sms["rows"] - sms["train"], sms["vocab"]), flush=True)
        report["sms_vocabulary"] = sms["vocab"]
    if args.prepare_only:
        report["prepare_only"] = True
        print(json.dumps(report))
        return 0

    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    report.update({"torch": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": cuda,
                   "cuda_devices": torch.cuda.device_count() if cuda else 0,
                   "gpu": torch.cuda.get_device_name(0) if cuda else None,
                   "cudnn": torch.backends.cudnn.version() if cuda else None, "cpu_threads": torch.get_num_threads()})
    print("torch %s (CUDA %s), cuda available %s, %d device(s)%s, %d CPU threads"
          % (torch.__version__, torch.version.cuda, cuda, report["cuda_devices"],
             (", " + report["gpu"]) if cuda else "", torch.get_num_threads()), flush=True)
    if args.device == "cuda" and not cuda:
        report["errors"].append({"family": "runtime", "error": "--device cuda but torch.cuda.is_available() is false"})
        emit(report, args, total)
        return 3
    device = torch.device("cuda:0" if args.device == "cuda" else "cpu")
    for family in args.families:
        try:
            r = run_family(torch, family, args, fashion, sms, device)
            report["results"].append(r)
            print("%-12s device=%s train=%d test=%d epochs=%d median_epoch_s=%.4f accuracy=%.4f fit_s=%.2f score_s=%.2f epoch_s=[%s]"
                  % (family, device, r["train_rows"], r["test_rows"], r["epochs"], r["median_epoch_seconds"], r["accuracy"],
                     r["fit_seconds"], r["score_seconds"], ",".join("%.4f" % v for v in r["epoch_seconds"])), flush=True)
        except Exception as e:  # one family's failure must not hide the others' numbers
            report["errors"].append({"family": family, "error": "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")})
            print("error: %s failed: %r" % (family, e), file=sys.stderr, flush=True)
    emit(report, args, total)
    return 0 if not report["errors"] else 1


def emit(report, args, total):
    report["total_seconds"] = round(time.perf_counter() - total, 2)
    line = json.dumps(report)
    if args.json:
        with open(args.json, "w") as f:
            f.write(line + "\n")
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
