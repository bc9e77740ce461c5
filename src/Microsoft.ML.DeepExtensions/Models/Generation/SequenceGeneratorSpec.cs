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

    /// <summary>
    /// No n-gram of this size is generated twice in one output (0: off). Default 2: no word pair repeats, which stops a
    /// small model's loops ("tool tool tool") at no cost to text that does not repeat itself.
    /// </summary>
    public int NoRepeatNgramSize { get; set; } = 2;

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
        if (NoRepeatNgramSize < 0) throw new ArgumentOutOfRangeException(nameof(NoRepeatNgramSize), NoRepeatNgramSize, $"Decoding.NoRepeatNgramSize must be 0 (off) or positive; got {NoRepeatNgramSize}.");
        if (MinLength < 0) throw new ArgumentOutOfRangeException(nameof(MinLength), MinLength, $"Decoding.MinLength must be 0 or positive; got {MinLength}.");
        if (TopK < 0) throw new ArgumentOutOfRangeException(nameof(TopK), TopK, $"Decoding.TopK must be 0 (all tokens) or positive; got {TopK}.");
        if (!(LengthPenalty >= 0)) throw new ArgumentOutOfRangeException(nameof(LengthPenalty), LengthPenalty, $"Decoding.LengthPenalty must be 0 or positive; got {LengthPenalty}.");
        if (Temperature > 0 && BeamWidth > 1) throw new ArgumentException("Decoding: choose beam search (BeamWidth > 1) or sampling (Temperature > 0), not both.", nameof(BeamWidth));
    }

    internal Decoding Copy() => (Decoding)MemberwiseClone();
}

/// <summary>The network inside a sequence generator.</summary>
public enum GeneratorArchitecture
{
    /// <summary>Recurrent encoder and decoder (GRU/LSTM/RNN) with Luong attention over the source (Sutskever et al., 2014; Luong et al., 2015).</summary>
    Recurrent,
    /// <summary>The transformer encoder of this library and a transformer decoder: causal self-attention, cross-attention over the source, feed-forward (Vaswani et al., 2017).</summary>
    Transformer,
}

/// <summary>
/// An encoder–decoder that generates a sequence of output tokens. The source is a token sequence (many-to-many: an
/// encoder reads it, and the decoder attends over its outputs) or a vector such as a one-hot class (one-to-many: the
/// vector sets the recurrent decoder's initial state, or is the transformer decoder's one memory token). The decoder reads
/// the previous output token; it is trained with teacher forcing and decodes greedily, with beam search or by sampling at
/// scoring time (<see cref="Decoding"/>). The label is one output class per step, ending with <see cref="EndClass"/>; the
/// network's output is one score per class and step (<see cref="OutputSteps"/> × classes).
/// </summary>
[SerializedName("seq2seq")]
public sealed class SequenceGeneratorSpec : NetworkSpec
{
    /// <summary>The token input, when the source is a token sequence; null for a vector source.</summary>
    internal TokenInput? SourceTokens => Input as TokenInput;

    /// <summary>Recurrent or transformer encoder and decoder.</summary>
    public GeneratorArchitecture Architecture { get; set; } = GeneratorArchitecture.Recurrent;
    /// <summary>Recurrent cell (recurrent architecture).</summary>
    public RecurrentCell Cell { get; set; } = RecurrentCell.Gru;
    /// <summary>Width of the token embeddings (recurrent architecture; the transformer embeds in <see cref="HiddenSize"/>).</summary>
    public int EmbeddingSize { get; set; } = 128;
    /// <summary>Hidden units of the recurrent encoder and decoder, or the transformer's model width d.</summary>
    public int HiddenSize { get; set; } = 256;
    /// <summary>Layers of the encoder and of the decoder.</summary>
    public int Depth { get; set; } = 1;
    /// <summary>Attention heads (transformer architecture; must divide <see cref="HiddenSize"/>).</summary>
    public int Heads { get; set; } = 4;
    /// <summary>Dropout on embeddings, inside the layers and before the output layer.</summary>
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
    /// Copy attention (a pointer-generator, See et al., 2017; recurrent architecture, token source): for each source id
    /// (index = id), the output class of the same word, or −1. Empty: no copying.
    /// </summary>
    public int[] CopyClasses { get; set; } = [];

    /// <summary>Whether the decoder can copy source words (<see cref="CopyClasses"/>).</summary>
    internal bool Copies => CopyClasses.Length > 0 && SourceTokens is not null && Architecture == GeneratorArchitecture.Recurrent;

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
        if (EmbeddingSize < 1 || HiddenSize < 1 || Depth < 1 || Heads < 1)
            throw new InvalidOperationException($"Seq2Seq: embedding size, hidden size, depth and heads must be at least 1 (got {EmbeddingSize}, {HiddenSize}, {Depth}, {Heads}).");
        if (Architecture == GeneratorArchitecture.Transformer && (HiddenSize % Heads != 0 || HiddenSize % 2 != 0))
            throw new InvalidOperationException($"Seq2Seq: the transformer's width {HiddenSize} must be even and divisible by its {Heads} heads.");
        if (Dropout is < 0 or >= 1) throw new InvalidOperationException("Seq2Seq: dropout must be in [0, 1).");
        if (OutputSteps < 1 || OutputSize % OutputSteps != 0)
            throw new InvalidOperationException($"Seq2Seq: {OutputSize} outputs are not {OutputSteps} steps × classes.");
        if (EndClass < 0 || EndClass >= Classes) throw new InvalidOperationException($"Seq2Seq: the end class {EndClass} is not one of the {Classes} output classes.");
        if (CopyClasses.Length > 0 && (SourceTokens is not { } t || CopyClasses.Length != t.EmbeddingRows || CopyClasses.Any(c => c < -1 || c >= Classes)))
            throw new InvalidOperationException($"Seq2Seq: the copy table must map each of the source's ids to an output class or −1 ({CopyClasses.Length} entries).");
        Decoding.Validate();
    }

    /// <inheritdoc />
    public override nn.Module<Tensor, Tensor> Build() => Architecture == GeneratorArchitecture.Transformer ? new TransformerGenerator(this) : new RecurrentGenerator(this);

    /// <inheritdoc />
    public override IEnumerable<LayerInfo> Layers()
    {
        int e = EmbeddingSize, h = HiddenSize, k = Classes, s = InputSize, t = OutputSteps;
        string layers = $"{Depth} layer{(Depth > 1 ? "s" : "")}";
        yield return SourceTokens is null ? new LayerInfo("input (condition vector)", [s], 0) : new LayerInfo("input (token ids)", [s], 0);
        if (Architecture == GeneratorArchitecture.Transformer)
        {
            long attention = 4L * h * h + 4L * h, ff = 2L * h * 2 * h + 3L * h;
            if (SourceTokens is { } tokens)
            {
                yield return new LayerInfo($"source embedding ({tokens.EmbeddingRows} ids) + sinusoidal positions", [s, h], (long)tokens.EmbeddingRows * h);
                foreach (var layer in EncoderSummary.Layers(h, Depth, Heads, 2 * h, LayerNormPosition.Pre, s)) yield return layer;
            }
            else yield return new LayerInfo("condition → memory token (Linear)", [1, h], ((long)s + 1) * h);
            yield return new LayerInfo($"output embedding ({k} classes, start, padding) + positions", [t, h], (long)(k + 2) * h);
            for (int i = 0; i < Depth; i++)
                yield return new LayerInfo($"decoder{i + 1} (causal self-attention, cross-attention, ff {2 * h}; {Heads} heads)", [t, h], 2 * attention + ff + 6L * h);
            yield return new LayerInfo("final LayerNorm", [t, h], 2L * h);
        }
        else
        {
            long Rnn(int inputs) => Enumerable.Range(0, Depth).Sum(l => (long)Gates * h * ((l == 0 ? inputs : h) + h + 2));
            if (SourceTokens is { } tokens)
            {
                yield return new LayerInfo($"source embedding ({tokens.EmbeddingRows} ids)", [s, e], (long)tokens.EmbeddingRows * e);
                yield return new LayerInfo($"encoder ({Cell}, {layers})", [s, h], Rnn(e));
            }
            else yield return new LayerInfo("condition → initial state (Linear, tanh)", [Depth, h], ((long)s + 1) * Depth * h);
            yield return new LayerInfo($"output embedding ({k} classes, start, padding)", [t, e], (long)(k + 2) * e);
            yield return new LayerInfo($"decoder ({Cell}, {layers})", [t, h], Rnn(e));
            if (SourceTokens is not null)
            {
                yield return new LayerInfo("attention (Luong, general)", [t, h], (long)h * h);
                yield return new LayerInfo("attentional state (Linear 2h → h, tanh)", [t, h], (2L * h + 1) * h);
            }
            if (Copies)
                yield return new LayerInfo($"copy gate (Linear 2h → 1, sigmoid; {CopyClasses.Count(c => c >= 0)} source words copyable)", [t, 1], 2L * h + 1);
        }
        yield return new LayerInfo("output (Linear)", [t, k], ((long)h + 1) * k);
    }

    private int Gates => Cell switch { RecurrentCell.Lstm => 4, RecurrentCell.Gru => 3, _ => 1 };

    /// <summary>What the decoder attends over: memory [N, S, h] and its real-token mask [N, S] (null without attention).</summary>
    private sealed record Source(Tensor? Memory, Tensor? Keep, Tensor? CopyTo = null, Tensor? Copyable = null)
    {
        public Source Select(Tensor rows) => new(Memory?.index_select(0, rows), Keep?.index_select(0, rows), CopyTo?.index_select(0, rows), Copyable?.index_select(0, rows));
    }

    /// <summary>What a decoder carries from step to step, for rows that beam search can reorder.</summary>
    private abstract record DecoderState
    {
        public abstract DecoderState Select(Tensor rows);
    }

    /// <summary>
    /// Teacher forcing in training, <see cref="Decoding"/> at scoring: the decoding rules (greedy, sampling, beam search,
    /// minimum length, end token) are shared; an architecture supplies the encoder, one decoder step and the
    /// teacher-forced pass. Output-token ids: 0 padding, 1 start, class c is c + 2.
    /// </summary>
    private abstract class GeneratorBody : nn.Module<Tensor, Tensor>, ILabelFedModule
    {
        protected const long Padding = 0, Start = 1;
        protected readonly SequenceGeneratorSpec _spec;
        protected readonly int _classes, _steps;
        private Generator? _generator;
        private int _generatorSeed;

        protected GeneratorBody(SequenceGeneratorSpec s, string name) : base(name) => (_spec, _classes, _steps) = (s, s.Classes, s.OutputSteps);

        /// <summary>The source and the decoder's state before the first step.</summary>
        protected abstract (Source Source, DecoderState State) Encode(Tensor x);

        /// <summary>One step: the previous tokens [N] → scores [N, K] for the next one, and the new state.</summary>
        protected abstract (Tensor Scores, DecoderState Next) Step(Tensor tokens, Source source, DecoderState state);

        /// <summary>Scores [B, T, K] for decoder inputs [B, T] (start, then the label's tokens), every step at once.</summary>
        protected abstract Tensor TeacherForced(Tensor x, Tensor inputs);

        protected Tensor Drop(Tensor x) => nn.functional.dropout(x, _spec.Dropout, training);

        /// <summary>Throws when a condition vector has no class (all zeros) at scoring.</summary>
        protected void CheckCondition(Tensor x)
        {
            if (!training && x.abs().sum(1).eq(0).any().item<bool>())
                throw new InvalidOperationException(
                    $"Seq2Seq: feature column '{_spec.SourceColumnName}' has a row whose condition vector is all zeros — for a one-hot class, a value that was not among the training data's classes.");
        }

        /// <summary>Teacher forcing: step t reads the label's token t − 1 (the start token at t = 0).</summary>
        public Tensor Forward(Tensor x, Tensor y)
        {
            long b = y.shape[0];
            var previous = y.narrow(1, 0, _steps - 1).to_type(ScalarType.Int64);
            var ids = previous.add(2L).masked_fill(previous.lt(0L), Padding);                         // class c → id c + 2; past the end → padding
            var inputs = cat([full(b, 1, Start, ScalarType.Int64, device: y.device), ids], 1);       // [B, T]
            return TeacherForced(x, inputs).reshape(b, -1);
        }

        public override Tensor forward(Tensor x)
        {
            if (training) throw new InvalidOperationException("Seq2Seq: training reads the labels too (teacher forcing); the trainer calls Forward(x, y).");
            var d = _spec.Decoding;
            return d.BeamWidth > 1 || d.AlwaysBeam ? Beam(x, d) : Greedy(x, d);
        }

        /// <summary>
        /// Step <paramref name="t"/> after the classes generated so far, <paramref name="history"/> [N, t]: the end token is
        /// barred before <see cref="Decoding.MinLength"/>, and a token that would repeat an n-gram of
        /// <see cref="Decoding.NoRepeatNgramSize"/> is barred too.
        /// </summary>
        private (Tensor Scores, DecoderState Next) StepAt(int t, Tensor tokens, Source source, DecoderState state, Tensor history)
        {
            var (scores, next) = Step(tokens, source, state);
            if (t < _spec.Decoding.MinLength)
                scores = scores.index_fill(1, tensor((long)_spec.EndClass, device: scores.device), float.NegativeInfinity);
            int n = _spec.Decoding.NoRepeatNgramSize;
            if (n < 1 || t < n - 1 || t == 0) return (scores, next);
            var h = history.cpu().data<long>().ToArray();
            var (rows, banned) = (new List<long>(), new List<long>());
            for (int r = 0; r < scores.shape[0]; r++)
            {
                int o = r * t;
                for (int j = 0; j + n - 1 < t; j++)
                {
                    int k = 0;
                    while (k < n - 1 && h[o + j + k] == h[o + t - n + 1 + k]) k++;
                    if (k == n - 1 && h[o + j + n - 1] != _spec.EndClass) { rows.Add(r); banned.Add(h[o + j + n - 1]); }
                }
            }
            if (rows.Count == 0) return (scores, next);
            using var minus = float.NegativeInfinity.ToScalar();
            return (scores.clone().index_put_(minus, [tensor(rows.ToArray(), device: scores.device), tensor(banned.ToArray(), device: scores.device)]), next);
        }

        /// <summary>
        /// Greedy (temperature 0: the real scores of every step) or sampling (one-hot scores of the drawn tokens). After a
        /// row's end token every later step scores the end token.
        /// </summary>
        private Tensor Greedy(Tensor x, Decoding d)
        {
            var (source, state) = Encode(x);
            long b = x.shape[0];
            var tokens = full(b, Start, ScalarType.Int64, device: x.device);
            var done = zeros(b, ScalarType.Bool, device: x.device);
            var end = full(b, _spec.EndClass, ScalarType.Int64, device: x.device);
            var steps = new List<Tensor>();
            var history = zeros(b, 0, ScalarType.Int64, device: x.device);
            for (int t = 0; t < _steps; t++)
            {
                var (scores, next) = StepAt(t, tokens, source, state, history);
                state = next;
                var chosen = d.Temperature > 0 ? Sample(scores, d) : scores.argmax(1);
                history = cat([history, chosen.unsqueeze(1)], 1);
                var stepScores = d.Temperature > 0 ? OneHot(chosen) : scores;
                steps.Add(torch.where(done.unsqueeze(1), OneHot(end), stepScores));
                done = done.logical_or(chosen.eq(_spec.EndClass));
                tokens = chosen.add(2L);
                if (done.all().item<bool>()) break;
            }
            while (steps.Count < _steps) steps.Add(OneHot(end));
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
            if (_generator is null || _generatorSeed != d.Seed)
            {
                _generator?.Dispose();
                (_generator, _generatorSeed) = (new Generator((ulong)d.Seed, scores.device), d.Seed);
            }
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
            var (source, state) = Encode(x);
            long b = x.shape[0], n = b * w;
            var expand = arange(b, device: x.device).repeat_interleave(w);
            source = source.Select(expand);
            state = state.Select(expand);
            var score = full(b, w, float.NegativeInfinity, device: x.device);
            score.index_fill_(1, tensor(0L, device: x.device), 0f);                                // start from one beam per row
            var lengths = zeros(b, w, device: x.device);
            var done = zeros(b, w, ScalarType.Bool, device: x.device);
            var tokens = full(n, Start, ScalarType.Int64, device: x.device);
            var chosen = new List<Tensor>();
            var parents = new List<Tensor>();
            var offsets = arange(b, device: x.device).mul(w).unsqueeze(1);                            // [B, 1]
            using var endOnly = full(_classes, float.NegativeInfinity, device: x.device).index_fill_(0, tensor((long)_spec.EndClass, device: x.device), 0f);
            var history = zeros(n, 0, ScalarType.Int64, device: x.device);
            for (int t = 0; t < _steps; t++)
            {
                var (scores, next) = StepAt(t, tokens, source, state, history);
                var logp = scores.log_softmax(1).view(b, w, _classes);
                logp = torch.where(done.unsqueeze(2), endOnly.view(1, 1, _classes).expand(b, w, _classes), logp);   // finished beams carry over
                var (best, index) = score.unsqueeze(2).add(logp).view(b, -1).topk(w, 1);
                var parent = index.div(_classes, rounding_mode: RoundingMode.floor);
                var cls = index.remainder(_classes);
                var rows = parent.add(offsets).view(-1);
                state = next.Select(rows);
                history = cat([history.index_select(0, rows), cls.view(-1, 1)], 1);
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

    /// <summary>The recurrent state between steps: h (and c for an LSTM), [layers, N, hidden].</summary>
    private sealed record RecurrentState(Tensor H, Tensor? C) : DecoderState
    {
        public override DecoderState Select(Tensor rows) => new RecurrentState(H.index_select(1, rows), C?.index_select(1, rows));
    }

    /// <summary>Recurrent encoder (packed, so padding never reaches it) and decoder, Luong attention over the encoder's outputs.</summary>
    private sealed class RecurrentGenerator : GeneratorBody
    {
        private readonly TorchSharp.Modules.Embedding? source_embedding;
        private readonly nn.Module? encoder;
        private readonly TorchSharp.Modules.Linear? condition;
        private readonly TorchSharp.Modules.Embedding output_embedding;
        private readonly nn.Module decoder;
        private readonly TorchSharp.Modules.Linear? attention;
        private readonly TorchSharp.Modules.Linear? combine;
        private readonly TorchSharp.Modules.Linear? copy_gate;
        private readonly TorchSharp.Modules.Linear output;
        private readonly Tensor? copy_classes;

        public RecurrentGenerator(SequenceGeneratorSpec s) : base(s, "Seq2Seq")
        {
            if (s.Copies)
            {
                copy_gate = nn.Linear(2L * s.HiddenSize, 1);
                copy_classes = tensor(s.CopyClasses.Select(c => (long)c).ToArray());
                register_buffer(nameof(copy_classes), copy_classes, persistent: false);
            }
            if (s.SourceTokens is { } t)
            {
                source_embedding = nn.Embedding(t.EmbeddingRows, s.EmbeddingSize, padding_idx: TokenInput.PaddingId);
                encoder = Recurrent(s, s.EmbeddingSize);
                attention = nn.Linear(s.HiddenSize, s.HiddenSize, hasBias: false);
                combine = nn.Linear(2L * s.HiddenSize, s.HiddenSize);
            }
            else condition = nn.Linear(s.InputSize, (long)s.Depth * s.HiddenSize);
            output_embedding = nn.Embedding(_classes + 2, s.EmbeddingSize, padding_idx: Padding);
            decoder = Recurrent(s, s.EmbeddingSize);
            output = nn.Linear(s.HiddenSize, _classes);
            RegisterComponents();
        }

        private static nn.Module Recurrent(SequenceGeneratorSpec s, int inputs) => s.Cell switch
        {
            RecurrentCell.Lstm => nn.LSTM(inputs, s.HiddenSize, s.Depth, batchFirst: true),
            RecurrentCell.Gru => nn.GRU(inputs, s.HiddenSize, s.Depth, batchFirst: true),
            _ => nn.RNN(inputs, s.HiddenSize, s.Depth, nn.NonLinearities.Tanh, batchFirst: true),
        };

        private static (Tensor Output, RecurrentState Last) Run(nn.Module rnn, Tensor steps, RecurrentState? state) => rnn switch
        {
            TorchSharp.Modules.LSTM lstm => lstm.call(steps, state is null ? null : (state.H, state.C!)) is var (o, h, c) ? (o, new RecurrentState(h, c)) : default,
            TorchSharp.Modules.GRU gru => gru.call(steps, state?.H) is var (o, h) ? (o, new RecurrentState(h, null)) : default,
            _ => ((TorchSharp.Modules.RNN)rnn).call(steps, state?.H) is var (o, h) ? (o, new RecurrentState(h, null)) : default,
        };

        private static (nn.utils.rnn.PackedSequence Output, RecurrentState Last) RunPacked(nn.Module rnn, nn.utils.rnn.PackedSequence steps) => rnn switch
        {
            TorchSharp.Modules.LSTM lstm => lstm.call(steps, null) is var (o, h, c) ? (o, new RecurrentState(h, c)) : default,
            TorchSharp.Modules.GRU gru => gru.call(steps, null) is var (o, h) ? (o, new RecurrentState(h, null)) : default,
            _ => ((TorchSharp.Modules.RNN)rnn).call(steps, null) is var (o, h) ? (o, new RecurrentState(h, null)) : default,
        };

        protected override (Source Source, DecoderState State) Encode(Tensor x)
        {
            if (condition is not null)
            {
                CheckCondition(x);
                var h = condition.call(x).tanh().view(x.shape[0], _spec.Depth, _spec.HiddenSize).transpose(0, 1).contiguous();
                return (new Source(null, null), new RecurrentState(h, _spec.Cell == RecurrentCell.Lstm ? zeros_like(h) : null));
            }
            var batch = TokenBatch.From(x);
            var embedded = Drop(source_embedding!.call(batch.Ids));
            using var lengths = batch.Lengths.cpu();
            using var packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first: true, enforce_sorted: false);
            var (output, last) = RunPacked(encoder!, packed);
            var (memory, _) = nn.utils.rnn.pad_packed_sequence(output, batch_first: true, total_length: batch.Ids.shape[1]);
            output.Dispose();
            if (copy_classes is null) return (new Source(memory, batch.Mask), last);
            var classes = copy_classes.index_select(0, batch.Ids.view(-1)).view_as(batch.Ids);          // [N, S]: output class or −1
            var copyable = classes.ge(0L).logical_and(batch.Mask).to_type(memory.dtype);
            return (new Source(memory, batch.Mask, classes.clamp_min(0L), copyable), last);
        }

        /// <summary>Decoder outputs [N, T, h] → class scores [N, T, K], attending over the memory when there is one.</summary>
        private Tensor Scores(Tensor decoded, Source source)
        {
            if (source.Memory is not { } memory) return output.call(Drop(decoded));
            var scores = attention!.call(decoded).matmul(memory.transpose(1, 2));                     // [N, T, S]
            using var minus = float.NegativeInfinity.ToScalar();                                     // held for the call (see SelfAttention.Forward)
            scores = scores.masked_fill(source.Keep!.logical_not().unsqueeze(1), minus);
            var weights = scores.softmax(-1);
            var context = weights.matmul(memory);                                                    // [N, T, h]
            var both = cat([decoded, context], -1);
            var logits = output.call(Drop(combine!.call(both).tanh()));
            if (copy_gate is null) return logits;
            // Pointer-generator: P(c) = g·softmax(logits)(c) + (1 − g)·(attention on source words that are class c).
            // Returned as log P: the loss's and the decoders' log-softmax of it renormalises what uncopyable words lose.
            var generate = copy_gate.call(both).sigmoid();                                           // [N, T, 1]
            var copied = weights.mul(source.Copyable!.unsqueeze(1)).mul(generate.neg().add(1f));    // [N, T, S]
            var index = source.CopyTo!.unsqueeze(1).expand(copied.shape[0], copied.shape[1], copied.shape[2]);
            var p = logits.softmax(-1).mul(generate).scatter_add(2, index, copied);
            return p.clamp_min(1e-9f).log();
        }

        protected override Tensor TeacherForced(Tensor x, Tensor inputs)
        {
            var (source, state) = Encode(x);
            var (decoded, _) = Run(decoder, Drop(output_embedding.call(inputs)), (RecurrentState)state);
            return Scores(decoded, source);
        }

        protected override (Tensor Scores, DecoderState Next) Step(Tensor tokens, Source source, DecoderState state)
        {
            var (decoded, next) = Run(decoder, output_embedding.call(tokens.unsqueeze(1)), (RecurrentState)state);
            return (Scores(decoded, source).squeeze(1), next);
        }
    }

    /// <summary>The transformer decoder's state: the tokens fed so far [N, t] (each step re-reads its prefix).</summary>
    private sealed record PrefixState(Tensor Tokens) : DecoderState
    {
        public override DecoderState Select(Tensor rows) => new PrefixState(Tokens.index_select(0, rows));
    }

    /// <summary>The library's transformer encoder over the source, and pre-norm decoder layers over the output prefix.</summary>
    private sealed class TransformerGenerator : GeneratorBody
    {
        private readonly TorchSharp.Modules.Embedding? source_embedding;
        private readonly Encoder? encoder;
        private readonly TorchSharp.Modules.Linear? condition;
        private readonly TorchSharp.Modules.Embedding output_embedding;
        private readonly TorchSharp.Modules.ModuleList<DecoderLayer> layers;
        private readonly TorchSharp.Modules.LayerNorm final_norm;
        private readonly TorchSharp.Modules.Linear output;
        private readonly Tensor source_positions;
        private readonly Tensor output_positions;

        public TransformerGenerator(SequenceGeneratorSpec s) : base(s, "TransformerSeq2Seq")
        {
            int d = s.HiddenSize;
            if (s.SourceTokens is { } t)
            {
                source_embedding = nn.Embedding(t.EmbeddingRows, d, padding_idx: TokenInput.PaddingId);
                encoder = new Encoder(d, s.Depth, s.Heads, 2 * d, s.Dropout, 0, LayerNormPosition.Pre);
            }
            else condition = nn.Linear(s.InputSize, d);
            source_positions = TransformerSpec.Sinusoids(Math.Max(1, s.SourceTokens?.MaxLength ?? 1), d);
            output_positions = TransformerSpec.Sinusoids(_steps, d);
            output_embedding = nn.Embedding(_classes + 2, d, padding_idx: Padding);
            layers = nn.ModuleList(Enumerable.Range(0, s.Depth).Select(_ => new DecoderLayer(d, s.Heads, s.Dropout)).ToArray());
            final_norm = nn.LayerNorm(d);
            output = nn.Linear(d, _classes);
            register_buffer(nameof(source_positions), source_positions, persistent: false);
            register_buffer(nameof(output_positions), output_positions, persistent: false);
            RegisterComponents();
        }

        protected override (Source Source, DecoderState State) Encode(Tensor x)
        {
            long b = x.shape[0];
            var empty = zeros(b, 0, ScalarType.Int64, device: x.device);
            if (condition is not null)
            {
                CheckCondition(x);
                return (new Source(condition.call(x).unsqueeze(1), ones(b, 1, ScalarType.Bool, device: x.device)), new PrefixState(empty));
            }
            var batch = TokenBatch.From(x);
            var h = source_embedding!.call(batch.Ids) + source_positions.narrow(0, 0, batch.Ids.shape[1]);
            return (new Source(encoder!.Forward(Drop(h), batch.Mask, null), batch.Mask), new PrefixState(empty));
        }

        /// <summary>Decoder inputs [N, T] → scores [N, T, K].</summary>
        private Tensor Decode(Tensor inputs, Source source)
        {
            var h = Drop(output_embedding.call(inputs) + output_positions.narrow(0, 0, inputs.shape[1]));
            foreach (var layer in layers) h = layer.Forward(h, source.Memory!, source.Keep!);
            return output.call(Drop(final_norm.call(h)));
        }

        protected override Tensor TeacherForced(Tensor x, Tensor inputs) => Decode(inputs, Encode(x).Source);

        protected override (Tensor Scores, DecoderState Next) Step(Tensor tokens, Source source, DecoderState state)
        {
            var prefix = cat([((PrefixState)state).Tokens, tokens.unsqueeze(1)], 1);
            return (Decode(prefix, source).select(1, -1), new PrefixState(prefix));
        }
    }

    /// <summary>A pre-norm decoder layer: causal self-attention, cross-attention over the source memory, GELU feed-forward.</summary>
    private sealed class DecoderLayer : nn.Module
    {
        private readonly TorchSharp.Modules.LayerNorm norm1, norm2, norm3;
        private readonly TorchSharp.Modules.Linear self_qkv, self_out, cross_q, cross_kv, cross_out, ff1, ff2;
        private readonly int _heads;
        private readonly double _dropout;

        public DecoderLayer(int d, int heads, double dropout) : base("DecoderLayer")
        {
            norm1 = nn.LayerNorm(d);
            norm2 = nn.LayerNorm(d);
            norm3 = nn.LayerNorm(d);
            self_qkv = nn.Linear(d, 3L * d);
            self_out = nn.Linear(d, d);
            cross_q = nn.Linear(d, d);
            cross_kv = nn.Linear(d, 2L * d);
            cross_out = nn.Linear(d, d);
            ff1 = nn.Linear(d, 2L * d);
            ff2 = nn.Linear(2L * d, d);
            (_heads, _dropout) = (heads, dropout);
            RegisterComponents();
        }

        private Tensor Heads(Tensor x) => x.view(x.shape[0], x.shape[1], _heads, -1).transpose(1, 2);   // [N, H, L, dh]

        private Tensor Merge(Tensor x) => x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1);

        private Tensor Drop(Tensor x) => nn.functional.dropout(x, _dropout, training);

        /// <summary><paramref name="x"/> [N, T, d] over <paramref name="memory"/> [N, S, d] with its real-token mask [N, S].</summary>
        public Tensor Forward(Tensor x, Tensor memory, Tensor keep)
        {
            double p = training ? _dropout : 0;
            var qkv = self_qkv.call(norm1.call(x)).chunk(3, -1);
            x = x + Drop(self_out.call(Merge(nn.functional.scaled_dot_product_attention(Heads(qkv[0]), Heads(qkv[1]), Heads(qkv[2]), null, p, true))));
            var kv = cross_kv.call(memory).chunk(2, -1);
            var additive = keep.to_type(x.dtype).sub(1f).mul(1e4f).view(keep.shape[0], 1, 1, keep.shape[1]);   // padded source tokens get −10⁴
            x = x + Drop(cross_out.call(Merge(nn.functional.scaled_dot_product_attention(Heads(cross_q.call(norm2.call(x))), Heads(kv[0]), Heads(kv[1]), additive, p, false))));
            return x + Drop(ff2.call(Drop(nn.functional.gelu(ff1.call(norm3.call(x))))));
        }
    }
}
