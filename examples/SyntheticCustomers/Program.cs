// Synthetic customer records with a conditional GAN.
//
// A customer table (UCI Adult census records stand in for customers: age, work class, education, occupation, hours per
// week, ... and whether the income is above 50K, the "segment") is featurised the usual ML.NET way (one-hot categoricals
// + numbers), a conditional GAN (mlContext.Deep().Gan) learns it, and the app then
//   1. generates synthetic customers of each segment and decodes them back into readable records (synthetic.csv),
//   2. checks their usefulness: a LightGBM classifier trained on synthetic rows vs one trained on real rows, both tested
//      on held-out real customers, and compares a few column statistics,
//   3. saves the model, loads it in a fresh MLContext and uses the discriminator's Score to list the least typical real
//      customers (an anomaly score).
//
//   dotnet run -c Release --project examples/SyntheticCustomers                      # ../shared/data/adult/adult.csv
//   dotnet run -c Release --project examples/SyntheticCustomers -- <customers.csv> [--epochs N] [--count N]
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions;
using Microsoft.ML.Trainers.LightGbm;
using SyntheticCustomers;

string? path = args.FirstOrDefault(a => !a.StartsWith("--")) ?? Customer.FindSample();
int epochs = Option("--epochs", 15), count = Option("--count", 1000);
if (path is null || !File.Exists(path))
{
    Console.Error.WriteLine("Usage: SyntheticCustomers [customers.csv] [--epochs N] [--count N]   (default: ../shared/data/adult/adult.csv)");
    return 1;
}

var ml = new MLContext(seed: 1);
var split = ml.Data.TrainTestSplit(ml.Data.LoadFromTextFile<Customer>(path, separatorChar: ',', hasHeader: true, trimWhitespace: true), 0.2, seed: 1);

// ---- 1. Featurise and train the GAN, conditional on the segment -------------------------------------------------
var prep = ml.Transforms.Categorical.OneHotEncoding(Customer.Categorical.Select(c => new InputOutputColumnPair(c)).ToArray())
    .Append(ml.Transforms.Concatenate("Features", [.. Customer.Numeric, .. Customer.Categorical]))
    .Append(ml.Transforms.Conversion.MapValueToKey("Segment", nameof(Customer.Label)))
    .Fit(split.TrainSet);
var train = ml.Data.Cache(prep.Transform(split.TrainSet));
var test = prep.Transform(split.TestSet);
int rows = train.GetColumn<uint>("Segment").Count();
Console.WriteLine($"{rows:N0} training customers, {((VectorDataViewType)train.Schema["Features"].Type).Size} features after one-hot encoding.");

var gan = ml.Deep().Gan(new GanTrainer.Options
{
    LabelColumnName = "Segment", Epochs = epochs, BatchSize = 128, Seed = 1, NumberOfThreads = 1, Verbose = true,
}).Fit(train);

// ---- 2. Generate and decode ---------------------------------------------------------------------------------------
VBuffer<ReadOnlyMemory<char>> slots = default;
train.Schema["Features"].GetSlotNames(ref slots);
var decoder = new Decoder(slots.DenseValues().Select(s => s.ToString()).ToArray());
var synthetic = gan.Generate(count, seed: 7);
var records = decoder.Decode(synthetic.GetColumn<float[]>("Features"), synthetic.GetColumn<uint>("Segment"), gan.ClassNames).ToList();
File.WriteAllLines("synthetic.csv", records.Select(r => r.ToCsv()).Prepend(Decoder.CsvHeader));
Console.WriteLine($"\nFive of {count} synthetic customers (all in synthetic.csv):");
foreach (var r in records.Take(5)) Console.WriteLine("  " + r);

var real = ml.Data.CreateEnumerable<Customer>(split.TrainSet, reuseRowObject: false).ToList();
Console.WriteLine($"\n{"",-22}{"real",10}{"synthetic",12}");
Console.WriteLine($"{"mean age",-22}{real.Average(c => c.Age),10:F1}{records.Average(r => r.Numbers["Age"]),12:F1}");
Console.WriteLine($"{"mean hours per week",-22}{real.Average(c => c.HoursPerWeek),10:F1}{records.Average(r => r.Numbers["HoursPerWeek"]),12:F1}");
Console.WriteLine($"{"income > 50K",-22}{real.Average(c => c.Label ? 1.0 : 0),10:P1}{records.Average(r => r.Segment == "True" ? 1.0 : 0),12:P1}");
Console.WriteLine($"{"married-civ-spouse",-22}{real.Average(c => c.MaritalStatus == "Married-civ-spouse" ? 1.0 : 0),10:P1}{records.Average(r => r.Categories["MaritalStatus"] == "Married-civ-spouse" ? 1.0 : 0),12:P1}");

// Train on synthetic, test on real (the same classifier trained on real rows is the yardstick).
var classifier = ml.Transforms.Conversion.MapKeyToValue("Label", "Segment")
    .Append(ml.BinaryClassification.Trainers.LightGbm(new LightGbmBinaryTrainer.Options { Seed = 1, NumberOfThreads = 1 }));
double onReal = ml.BinaryClassification.Evaluate(classifier.Fit(train).Transform(test)).Accuracy;
double onSynthetic = ml.BinaryClassification.Evaluate(classifier.Fit(gan.Generate(rows, seed: 11)).Transform(test)).Accuracy;
Console.WriteLine($"\nLightGBM tested on real held-out customers: trained on real {onReal:P1}, trained on synthetic {onSynthetic:P1}.");

// ---- 3. Save, reload, and flag unusual real customers --------------------------------------------------------------
var modelPath = Path.Combine(Path.GetTempPath(), "customer-gan.zip");
ml.Model.Save(gan, train.Schema, modelPath);
var fresh = new MLContext();
var loaded = fresh.Deep().LoadModel(modelPath, out _);
var scores = loaded.Transform(test).GetColumn<float>("Score").ToArray();
var testRows = ml.Data.CreateEnumerable<Customer>(split.TestSet, reuseRowObject: false).ToList();
Console.WriteLine($"\nSaved to {modelPath} and reloaded. The three least typical held-out customers (lowest discriminator Score):");
foreach (int i in Enumerable.Range(0, scores.Length).OrderBy(i => scores[i]).Take(3))
    Console.WriteLine($"  score {scores[i],7:F2}: {testRows[i]}");
return 0;

int Option(string name, int fallback)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length && int.TryParse(args[at + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0 ? v : fallback;
}
