import numpy as np
import torch
from PIL import Image

from media import solid_video, write_video
from vidprompt.classifier import VideoClassifier
from vidprompt.methods.zeroshot import ZeroShotCLIP
from vidprompt.text_cache import TextEmbeddingCache
from vidprompt.video import ViewConfig, load_clip_frames

LABELS = ["surfing", "cooking", "playing guitar"]


def make_classifier(backbone, tmp_path, **kwargs):
    cache = TextEmbeddingCache(tmp_path / "cache")
    return VideoClassifier(ZeroShotCLIP(backbone), kwargs.pop("view", ViewConfig(frames=4)), device="cpu",
                           num_workers=0, text_cache=cache, **kwargs)


def independent_scores(backbone, frames_uint8, labels, templates):
    """open_clip's own transform and encode_image/encode_text, written out here without vidprompt code."""
    import open_clip

    model, tok = backbone.model, backbone.tokenizer
    transform = open_clip.image_transform(backbone.preprocess_cfg["size"], is_train=False)
    images = torch.stack([transform(Image.fromarray(f)) for f in frames_uint8])
    with torch.no_grad():
        img = model.encode_image(images)
        img = img / img.norm(dim=-1, keepdim=True)
        video = img.mean(0)
        video = video / video.norm()
        class_emb = []
        for label in labels:
            t = model.encode_text(tok([tpl.format(label) for tpl in templates]))
            t = t / t.norm(dim=-1, keepdim=True)
            t = t.mean(0)
            class_emb.append(t / t.norm())
        text = torch.stack(class_emb)
        logits = model.logit_scale.exp() * video @ text.t()
    return logits


def test_logits_equal_open_clip_math(tiny_backbone, videos, tmp_path):
    clf = make_classifier(tiny_backbone, tmp_path)
    frames = load_clip_frames(videos["index_mp4"], ViewConfig(frames=4)).frames.numpy()[0]
    expected = independent_scores(tiny_backbone, frames, LABELS, clf.model.templates)
    result = clf.classify([videos["index_mp4"]], LABELS, top_k=3)[0]
    torch.testing.assert_close(result.probabilities, expected.softmax(-1), atol=2e-3, rtol=0)
    scores = [p.score for p in result.predictions]
    assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-5


def test_video_of_one_image_scores_like_that_image(tiny_backbone, tmp_path):
    frames = solid_video((30, 160, 220), n=12)
    path = write_video(tmp_path / "still.mp4", frames)
    clf = make_classifier(tiny_backbone, tmp_path)
    decoded = load_clip_frames(path, ViewConfig(frames=1)).frames.numpy()[0]  # the codec's version of that image
    expected = independent_scores(tiny_backbone, decoded, LABELS, clf.model.templates).softmax(-1)
    result = clf.classify([str(path)], LABELS)[0]
    torch.testing.assert_close(result.probabilities, expected, atol=2e-3, rtol=0)


def test_views_average_per_view_probabilities(tiny_backbone, videos, tmp_path):
    view = ViewConfig(frames=4, clips=2, crops=3)
    clf = make_classifier(tiny_backbone, tmp_path, view=view)
    _, _, emb, _ = next(clf.video_embeddings([videos["odd_size"]]))
    assert emb.shape == (6, tiny_backbone.embed_dim)
    text = clf.label_embeddings(LABELS)
    expected = (clf.model.logit_scale * emb @ text.t()).softmax(-1).mean(0)
    result = clf.classify([videos["odd_size"]], LABELS)[0]
    torch.testing.assert_close(result.probabilities, expected)


def test_batch_with_broken_files_still_classifies_the_rest(tiny_backbone, videos, tmp_path):
    clf = make_classifier(tiny_backbone, tmp_path, batch_size=3)
    paths = [videos["index_mp4"], videos["truncated"], videos["red"], videos["empty"], videos["not_video"],
             str(tmp_path / "missing.mp4"), videos["short"]]
    results = clf.classify(paths, LABELS, top_k=2)
    assert [r.video for r in results] == paths
    assert [r.ok for r in results] == [True, False, True, False, False, False, True]
    assert results[3].error == "empty file" and results[5].error == "file not found"
    assert all(len(r.predictions) == 2 for r in results if r.ok)


def test_results_do_not_depend_on_batch_size_or_workers(tiny_backbone, videos, tmp_path):
    paths = [videos[k] for k in ("index_mp4", "index_avi", "red", "short", "long")]
    a = make_classifier(tiny_backbone, tmp_path, batch_size=1).classify(paths, LABELS)
    b = VideoClassifier(ZeroShotCLIP(tiny_backbone), ViewConfig(frames=4), device="cpu", batch_size=4,
                        num_workers=2, text_cache=TextEmbeddingCache(tmp_path / "c2")).classify(paths, LABELS)
    for x, y in zip(a, b):
        torch.testing.assert_close(x.probabilities, y.probabilities, atol=1e-5, rtol=0)


def test_text_embeddings_computed_once_and_cached_on_disk(tiny_backbone, videos, tmp_path, monkeypatch):
    calls = []
    original = ZeroShotCLIP.encode_labels

    def counting(self, labels):
        calls.append(list(labels))
        return original(self, labels)

    monkeypatch.setattr(ZeroShotCLIP, "encode_labels", counting)
    clf = make_classifier(tiny_backbone, tmp_path)
    first = clf.label_embeddings(LABELS)
    clf.classify([videos["red"]], LABELS)
    assert len(calls) == 1
    fresh = make_classifier(tiny_backbone, tmp_path)  # a new process would see the same disk cache
    torch.testing.assert_close(fresh.label_embeddings(LABELS), first)
    assert len(calls) == 1
    fresh.label_embeddings(LABELS[:2])  # another label list is another key
    other_templates = VideoClassifier(ZeroShotCLIP(tiny_backbone, ["a photo of {}."]), ViewConfig(frames=4),
                                      device="cpu", text_cache=TextEmbeddingCache(tmp_path / "cache"))
    other_templates.label_embeddings(LABELS)
    assert len(calls) == 3
    bf16 = VideoClassifier(ZeroShotCLIP(tiny_backbone), ViewConfig(frames=4), device="cpu", precision="bf16",
                           text_cache=TextEmbeddingCache(tmp_path / "cache"))
    bf16.label_embeddings(LABELS)  # another precision gives other numbers: not the fp32 entry
    assert len(calls) == 4
    assert len(list((tmp_path / "cache" / "text").glob("*.safetensors"))) == 4


def test_one_template_option(tiny_backbone):
    model = ZeroShotCLIP(tiny_backbone, ["a video of {}."])
    with torch.no_grad():
        direct = model.clip.encode_text(tiny_backbone.tokenizer(["a video of surfing."]))
    torch.testing.assert_close(model.encode_labels(["surfing"]), direct / direct.norm(dim=-1, keepdim=True))


def test_memory_flat_in_video_length(videos):
    """Decoding a 1500-frame clip returns only the sampled frames (bounded by views, not length)."""
    frames = load_clip_frames(videos["long"], ViewConfig(frames=8)).frames.numpy()
    assert frames.shape[:2] == (1, 8)
    assert np.asarray(frames).nbytes == 8 * 32 * 32 * 3
