using Microsoft.ML.DeepExtensions.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>
/// How a sequence generator picks its tokens at scoring time. Greedy (the default: <see cref="BeamWidth"/> 1,
/// <see cref="Temperature"/> 0) takes the most likely token at each step; a wider beam keeps the
/// <see cref="BeamWidth"/> most likely prefixes and returns the best finished one; a positive temperature samples.
/// </summary>
public sealed class Decoding
{
    /// <summary>Prefixes kept by beam search; 1 = greedy.</summary>
    public int BeamWidth { get; set; } = 1;

    /// <summary>0: deterministic (greedy or beam); above 0: sample each token from softmax(logits / temperature).</summary>
    public double Temperature { get; set; }

    /// <summary>When sampling, draw only from the <see cref="TopK"/> most likely tokens; 0 for all.</summary>
    public int TopK { get; set; }

    /// <summary>Beam search ranks finished sequences by log-probability / ((5 + length) / 6)^α (Wu et al., 2016); 0 ranks by log-probability alone, higher favours longer outputs.</summary>
    public double LengthPenalty { get; set; } = 1.0;

    /// <summary>Tokens generated before the end token is allowed (default 1: never an empty output).</summary>
    public int MinLength { get; set; } = 1;

    /// <summary>Seed of the sampling generator: the same model, seed and rows give the same samples.</summary>
    public int Seed { get; set; } = 1;

    /// <summary>Runs beam search even at width 1 (which must then equal greedy decoding; for tests).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    internal bool AlwaysBeam { get; set; }

    /// <summary>Throws naming the setting when one is out of range.</summary>
    public void Validate()
    {
        if (BeamWidth < 1) throw new ArgumentOutOfRangeException(nameof(BeamWidth), BeamWidth, $"Decoding.BeamWidth must be at least 1; got {BeamWidth}.");
        if (!(Temperature >= 0) || double.IsInfinity(Temperature)) throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, $"Decoding.Temperature must be 0 (deterministic) or positive; got {Temperature}.");
        if (MinLength < 0) throw new ArgumentOutOfRangeException(nameof(MinLength), MinLength, $"Decoding.MinLength must be 0 or positive; got {MinLength}.");
        if (TopK < 0) throw new ArgumentOutOfRangeException(nameof(TopK), TopK, $"Decoding.TopK must be 0 (all tokens) or positive; got {TopK}.");
        if (!(LengthPenalty >= 0)) throw new ArgumentOutOfRangeException(nameof(LengthPenalty), LengthPenalty, $"Decoding.LengthPenalty must be 0 or positive; got {LengthPenalty}.");
        if (Temperature > 0 && BeamWidth > 1) throw new ArgumentException("Decoding: choose beam search (BeamWidth > 1) or sampling (Temperature > 0), not both.", nameof(BeamWidth));
    }

    internal Decoding Copy() => (Decoding)MemberwiseClone();
}

/// <summary>
/// An encoder–decoder that generates a sequence of output tokens (Sutskever et al., 2014; attention after Luong et al.,
/// 2015). The source is a token sequence (many-to-many: a recurrent encoder, and the decoder attends over its outputs) or a
/// vector such as a one-hot class (one-to-many: the vector sets the decoder's initial state). The decoder is a recurrent
/// network over the previous output token; it is trained with teacher forcing and decodes greedily, with beam search or by
/// sampling at scoring time (<see cref="Decoding"/>). The label is one output class per step, ending with
/// <see cref="EndClass"/>; the network's output is one score per class and step (<see cref="OutputSteps"/> × classes).
/// </summary>
[SerializedName("seq2seq")]
public sealed class SequenceGeneratorSpec : NetworkSpec
{
    /// <summary>The token input, when the source is a token sequence; null for a vector source.</summary>
    internal TokenInput? SourceTokens => Input as TokenInput;

    /// <summary>Encoder and decoder cell.</summary>
    public RecurrentCell Cell { get; set; } = RecurrentCell.Gru;
    /// <summary>Width of the token embeddings (source and output tokens).</summary>
    public int EmbeddingSize { get; set; } = 128;
    /// <summary>Hidden units of the encoder and the decoder.</summary>
    public int HiddenSize { get; set; } = 256;
    /// <summary>Stacked recurrent layers in the encoder and in the decoder.</summary>
    public int RecurrentLayers { get; set; } = 1;
    /// <summary>Dropout on embeddings and before the output layer.</summary>
    public double Dropout { get; set; } = 0.2;
    /// <summary>Output steps T: the longest output, its end token included.</summary>
    public int OutputSteps { get; set; }
    /// <summary>Class index (0-based) of the end token.</summary>
    public int EndClass { get; set; }
    /// <summary>How tokens are chosen at scoring time.</summary>
    public Decoding Decoding { get; set; } = new();
    /// <summary>The feature column's name, for errors about its rows.</summary>
    public string SourceColumnName { get; set; } = "";

    /// <summary>
    /// A condition vector (one-to-many) is used as given — a one-hot class stays one-hot, so a row with no class (an
    /// all-zero vector: a value not seen in training) can be named; token ids are never standardised anyway.
    /// </summary>
    public override bool NormalizesInput => true;

    /// <summary>Output classes K (the output vocabulary, end token included).</summary>
    public int Classes => OutputSteps > 0 ? OutputSize / OutputSteps : 0;

    /// <inheritdoc />
    public override string Family => "Seq2Seq";

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (EmbeddingSize < 1 || HiddenSize < 1 || RecurrentLayers < 1)
            throw new InvalidOperationException($"Seq2Seq: embedding size, hidden size and layers must be at least 1 (got {EmbeddingSize}, {HiddenSize}, {RecurrentLayers}).");
        if (Dropout is < 0 or >= 1) throw new InvalidOperationException("Seq2Seq: dropout must be in [0, 1).");
        if (OutputSteps < 1 || OutputSize % OutputSteps != 0)
            throw new InvalidOperationException($"Seq2Seq: {OutputSize} outputs are not {OutputSteps} steps × classes.");
        if (EndClass < 0 || EndClass >= Classes) throw new InvalidOperationException($"Seq2Seq: the end class {EndClass} is not one of the {Classes} output classes.");
        Decoding.Validate();
    }

    /// <inheritdoc />
    public override nn.Module<Tensor, Tensor> Build() => new Seq2SeqBody(this);

    /// <inheritdoc />
    public override IEnumerable<LayerInfo> Layers()
    {
        int e = EmbeddingSize, h = HiddenSize, k = Classes;
        long Rnn(int inputs) => Enumerable.Range(0, RecurrentLayers).Sum(l => (long)Gates * h * ((l == 0 ? inputs : h) + h + 2));
        if (SourceTokens is { } t)
        {
            yield return new LayerInfo("input (token ids)", [InputSize], 0);
            yield return new LayerInfo($"source embedding ({t.EmbeddingRows} ids)", [InputSize, e], (long)t.EmbeddingRows * e);
            yield return new LayerInfo($"encoder ({Cell}, {RecurrentLayers} layer{(RecurrentLayers > 1 ? "s" : "")})", [InputSize, h], Rnn(e));
        }
        else
        {
            yield return new LayerInfo("input (condition vector)", [InputSize], 0);
            yield return new LayerInfo("condition → initial state (Linear, tanh)", [RecurrentLayers, h], ((long)InputSize + 1) * RecurrentLayers * h);
        }
        yield return new LayerInfo($"output embedding ({k} classes, start, padding)", [OutputSteps, e], (long)(k + 2) * e);
        yield return new LayerInfo($"decoder ({Cell}, {RecurrentLayers} layer{(RecurrentLayers > 1 ? "s" : "")})", [OutputSteps, h], Rnn(e));
        if (SourceTokens is not null)
        {
            yield return new LayerInfo("attention (Luong, general)", [OutputSteps, h], (long)h * h);
            yield return new LayerInfo("attentional state (Linear 2h → h, tanh)", [OutputSteps, h], (2L * h + 1) * h);
        }
        yield return new LayerInfo("output (Linear)", [OutputSteps, k], ((long)h + 1) * k);
    }

    private int Gates => Cell switch { RecurrentCell.Lstm => 4, RecurrentCell.Gru => 3, _ => 1 };

    /// <summary>The recurrent state between steps: h (and c for an LSTM), [layers, B, hidden].</summary>
    private sealed record State(Tensor H, Tensor? C)
    {
        public State Select(Tensor rows) => new(H.index_select(1, rows), C?.index_select(1, rows));
    }

    /// <summary>Encoder, decoder, attention and output layer; teacher forcing in training, <see cref="Decoding"/> otherwise.</summary>
    private sealed class Seq2SeqBody : nn.Module<Tensor, Tensor>, ILabelFedModule
    {
        private const long Padding = 0, Start = 1;   // output-token ids: class c is c + 2
        private readonly SequenceGeneratorSpec _spec;
        private readonly TorchSharp.Modules.Embedding? source_embedding;
        private readonly nn.Module? encoder;
        private readonly TorchSharp.Modules.Linear? condition;
        private readonly TorchSharp.Modules.Embedding output_embedding;
        private readonly nn.Module decoder;
        private readonly TorchSharp.Modules.Linear? attention;
        private readonly TorchSharp.Modules.Linear? combine;
        private readonly TorchSharp.Modules.Linear output;
        private readonly int _classes, _steps, _layers, _hidden;
        private Generator? _generator;

        public Seq2SeqBody(SequenceGeneratorSpec s) : base("Seq2Seq")
        {
            _spec = s;
            (_classes, _steps, _layers, _hidden) = (s.Classes, s.OutputSteps, s.RecurrentLayers, s.HiddenSize);
            if (s.SourceTokens is { } t)
            {
                source_embedding = nn.Embedding(t.EmbeddingRows, s.EmbeddingSize, padding_idx: TokenInput.PaddingId);
                encoder = Recurrent(s, s.EmbeddingSize);
                attention = nn.Linear(s.HiddenSize, s.HiddenSize, hasBias: false);
                combine = nn.Linear(2L * s.HiddenSize, s.HiddenSize);
            }
            else condition = nn.Linear(s.InputSize, (long)s.RecurrentLayers * s.HiddenSize);
            output_embedding = nn.Embedding(_classes + 2, s.EmbeddingSize, padding_idx: Padding);
            decoder = Recurrent(s, s.EmbeddingSize);
            output = nn.Linear(s.HiddenSize, _classes);
            RegisterComponents();
        }

        private static nn.Module Recurrent(SequenceGeneratorSpec s, int inputs) => s.Cell switch
        {
            RecurrentCell.Lstm => nn.LSTM(inputs, s.HiddenSize, s.RecurrentLayers, batchFirst: true),
            RecurrentCell.Gru => nn.GRU(inputs, s.HiddenSize, s.RecurrentLayers, batchFirst: true),
            _ => nn.RNN(inputs, s.HiddenSize, s.RecurrentLayers, nn.NonLinearities.Tanh, batchFirst: true),
        };

        private static (Tensor Output, State Last) Run(nn.Module rnn, Tensor steps, State? state) => rnn switch
        {
            TorchSharp.Modules.LSTM lstm => lstm.call(steps, state is null ? null : (state.H, state.C!)) is var (o, h, c) ? (o, new State(h, c)) : default,
            TorchSharp.Modules.GRU gru => gru.call(steps, state?.H) is var (o, h) ? (o, new State(h, null)) : default,
            _ => ((TorchSharp.Modules.RNN)rnn).call(steps, state?.H) is var (o, h) ? (o, new State(h, null)) : default,
        };

        private static (nn.utils.rnn.PackedSequence Output, State Last) RunPacked(nn.Module rnn, nn.utils.rnn.PackedSequence steps) => rnn switch
        {
            TorchSharp.Modules.LSTM lstm => lstm.call(steps, null) is var (o, h, c) ? (o, new State(h, c)) : default,
            TorchSharp.Modules.GRU gru => gru.call(steps, null) is var (o, h) ? (o, new State(h, null)) : default,
            _ => ((TorchSharp.Modules.RNN)rnn).call(steps, null) is var (o, h) ? (o, new State(h, null)) : default,
        };

        private Tensor Drop(Tensor x) => nn.functional.dropout(x, _spec.Dropout, training);

        /// <summary>
        /// The source as the decoder needs it: the encoder's outputs [B, S, h] and real-token mask [B, S] (token source;
        /// packed, so padding never changes them), and the decoder's initial state.
        /// </summary>
        private (Tensor? Memory, Tensor? Keep, State Initial) Encode(Tensor x)
        {
            if (condition is not null)
            {
                if (!training && x.abs().sum(1).eq(0).any().item<bool>())
                    throw new InvalidOperationException(
                        $"Seq2Seq: feature column '{_spec.SourceColumnName}' has a row whose condition vector is all zeros — for a one-hot class, a value that was not among the training data's classes.");
                var h = condition.call(x).tanh().view(x.shape[0], _layers, _hidden).transpose(0, 1).contiguous();
                return (null, null, new State(h, _spec.Cell == RecurrentCell.Lstm ? zeros_like(h) : null));
            }
            var batch = TokenBatch.From(x);
            var embedded = Drop(source_embedding!.call(batch.Ids));
            using var lengths = batch.Lengths.cpu();
            using var packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first: true, enforce_sorted: false);
            var (output, last) = RunPacked(encoder!, packed);
            var (memory, _) = nn.utils.rnn.pad_packed_sequence(output, batch_first: true, total_length: batch.Ids.shape[1]);
            output.Dispose();
            return (memory, batch.Mask, last);
        }

        /// <summary>Decoder outputs [B, T, h] → class scores [B, T, K], attending over the memory when there is one.</summary>
        private Tensor Scores(Tensor decoded, Tensor? memory, Tensor? keep)
        {
            if (memory is null) return output.call(Drop(decoded));
            var scores = attention!.call(decoded).matmul(memory.transpose(1, 2));                     // [B, T, S]
            using var minus = float.NegativeInfinity.ToScalar();                                     // held for the call (see SelfAttention.Forward)
            scores = scores.masked_fill(keep!.logical_not().unsqueeze(1), minus);
            var context = scores.softmax(-1).matmul(memory);                                         // [B, T, h]
            return output.call(Drop(combine!.call(cat([decoded, context], -1)).tanh()));
        }

        /// <summary>Teacher forcing: step t reads the label's token t − 1 (the start token at t = 0).</summary>
        public Tensor Forward(Tensor x, Tensor y)
        {
            var (memory, keep, state) = Encode(x);
            long b = y.shape[0];
            var previous = y.narrow(1, 0, _steps - 1).to_type(ScalarType.Int64);
            var ids = previous.add(2L).masked_fill(previous.lt(0L), Padding);                         // class c → id c + 2; past the end → padding
            var inputs = cat([full(b, 1, Start, ScalarType.Int64, device: y.device), ids], 1);       // [B, T]
            var (decoded, _) = Run(decoder, Drop(output_embedding.call(inputs)), state);
            return Scores(decoded, memory, keep).reshape(b, -1);
        }

        public override Tensor forward(Tensor x)
        {
            if (training) throw new InvalidOperationException("Seq2Seq: training reads the labels too (teacher forcing); the trainer calls Forward(x, y).");
            var d = _spec.Decoding;
            return d.BeamWidth > 1 || d.AlwaysBeam ? Beam(x, d) : Greedy(x, d);
        }

        /// <summary>Decoder step <paramref name="t"/> for tokens [N] → scores [N, K] (the end token barred before <see cref="Decoding.MinLength"/>) and the next state.</summary>
        private (Tensor Scores, State Next) Step(int t, Tensor tokens, State state, Tensor? memory, Tensor? keep)
        {
            var (decoded, next) = Run(decoder, output_embedding.call(tokens.unsqueeze(1)), state);
            var scores = Scores(decoded, memory, keep).squeeze(1);
            if (t < _spec.Decoding.MinLength)
                scores = scores.index_fill(1, tensor((long)_spec.EndClass, device: scores.device), float.NegativeInfinity);
            return (scores, next);
        }

        /// <summary>
        /// Greedy (temperature 0: the real scores of every step) or sampling (one-hot scores of the drawn tokens). After a
        /// row's end token every later step scores the end token.
        /// </summary>
        private Tensor Greedy(Tensor x, Decoding d)
        {
            var (memory, keep, state) = Encode(x);
            long b = x.shape[0];
            var tokens = full(b, Start, ScalarType.Int64, device: x.device);
            var done = zeros(b, ScalarType.Bool, device: x.device);
            var steps = new List<Tensor>();
            for (int t = 0; t < _steps; t++)
            {
                var (scores, next) = Step(t, tokens, state, memory, keep);
                state = next;
                var chosen = d.Temperature > 0 ? Sample(scores, d) : scores.argmax(1);
                var stepScores = d.Temperature > 0 ? OneHot(chosen) : scores;
                stepScores = torch.where(done.unsqueeze(1), OneHot(full(b, _spec.EndClass, ScalarType.Int64, device: x.device)), stepScores);
                steps.Add(stepScores);
                done = done.logical_or(chosen.eq(_spec.EndClass));
                tokens = chosen.add(2L);
                if (done.all().item<bool>()) break;
            }
            for (int t = steps.Count; t < _steps; t++) steps.Add(OneHot(full(b, _spec.EndClass, ScalarType.Int64, device: x.device)));
            return stack(steps, 1).reshape(b, -1);
        }

        private Tensor Sample(Tensor scores, Decoding d)
        {
            using var temperature = d.Temperature.ToScalar();
            var logits = scores.div(temperature);
            if (d.TopK > 0 && d.TopK < _classes)
            {
                var (kth, _) = logits.topk(d.TopK, 1);
                using var minus = float.NegativeInfinity.ToScalar();
                logits = logits.masked_fill(logits.lt(kth.narrow(1, d.TopK - 1, 1)), minus);
            }
            _generator ??= new Generator((ulong)d.Seed, scores.device);
            return logits.softmax(1).multinomial(1, false, _generator).squeeze(1);
        }

        /// <summary>
        /// Scores whose softmax is all but 1 at <paramref name="classes"/> [N]: 0 there, −20 elsewhere (finite, so the
        /// validation loss of a free-running decoder stays readable).
        /// </summary>
        private Tensor OneHot(Tensor classes)
        {
            var scores = full(classes.shape[0], _classes, -20f, device: classes.device);
            return scores.scatter(1, classes.unsqueeze(1), zeros(classes.shape[0], 1, device: classes.device));
        }

        /// <summary>
        /// Beam search over B rows × W beams at once: each step extends every unfinished beam by every class and keeps the
        /// W best by summed log-probability; finished beams only carry over. The best finished beam under the length
        /// penalty is the row's output (one-hot scores per step).
        /// </summary>
        private Tensor Beam(Tensor x, Decoding d)
        {
            int w = d.BeamWidth;
            var (memory, keep, state) = Encode(x);
            long b = x.shape[0], n = b * w;
            var expand = arange(b, device: x.device).repeat_interleave(w);
            state = state.Select(expand);
            memory = memory?.index_select(0, expand);
            keep = keep?.index_select(0, expand);
            var score = full(b, w, float.NegativeInfinity, device: x.device);
            score.index_fill_(1, tensor(0L, device: x.device), 0f);                                // start from one beam per row
            var lengths = zeros(b, w, device: x.device);
            var done = zeros(b, w, ScalarType.Bool, device: x.device);
            var tokens = full(n, Start, ScalarType.Int64, device: x.device);
            var chosen = new List<Tensor>();
            var parents = new List<Tensor>();
            var offsets = arange(b, device: x.device).mul(w).unsqueeze(1);                            // [B, 1]
            using var endOnly = full(_classes, float.NegativeInfinity, device: x.device).index_fill_(0, tensor((long)_spec.EndClass, device: x.device), 0f);
            for (int t = 0; t < _steps; t++)
            {
                var (scores, next) = Step(t, tokens, state, memory, keep);
                var logp = scores.log_softmax(1).view(b, w, _classes);
                logp = torch.where(done.unsqueeze(2), endOnly.view(1, 1, _classes).expand(b, w, _classes), logp);   // finished beams carry over
                var (best, index) = score.unsqueeze(2).add(logp).view(b, -1).topk(w, 1);
                var parent = index.div(_classes, rounding_mode: RoundingMode.floor);
                var cls = index.remainder(_classes);
                var rows = parent.add(offsets).view(-1);
                state = next.Select(rows);
                var wasDone = done.gather(1, parent);
                lengths = lengths.gather(1, parent).add(wasDone.logical_not().to_type(ScalarType.Float32));
                done = wasDone.logical_or(cls.eq(_spec.EndClass));
                score = best;
                chosen.Add(cls);
                parents.Add(parent);
                tokens = cls.view(-1).add(2L);
                if (done.all().item<bool>()) break;
            }
            // Rank: finished beams first, then by length-normalised log-probability.
            using var penaltyPower = d.LengthPenalty.ToScalar();
            var normalised = score.div(lengths.add(5f).div(6f).pow(penaltyPower));
            normalised = torch.where(done, normalised, normalised.sub(1e9f));
            var beam = normalised.argmax(1, keepdim: true);                                          // [B, 1]
            var path = new Tensor[chosen.Count];
            for (int t = chosen.Count - 1; t >= 0; t--)
            {
                path[t] = chosen[t].gather(1, beam).squeeze(1);
                beam = parents[t].gather(1, beam);
            }
            var steps = new List<Tensor>();
            var ended = zeros(b, ScalarType.Bool, device: x.device);
            var end = full(b, _spec.EndClass, ScalarType.Int64, device: x.device);
            for (int t = 0; t < _steps; t++)
            {
                var token = t < path.Length ? torch.where(ended, end, path[t]) : end;
                steps.Add(OneHot(token));
                ended = ended.logical_or(token.eq(_spec.EndClass));
            }
            return stack(steps, 1).reshape(b, -1);
        }
    }
}
