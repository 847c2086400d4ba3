"""The demo's terminal: mmengine's log lines become short progress lines; the rest stays in the
step's log file."""
from repvgg_mm.benchmark.demo import conversion_line, progress_line

PREFIX = '12/06 02:02:00 - mmengine - INFO - '


def test_training_shows_every_fifth_of_the_run():
    line = (PREFIX + 'Iter(train) [{}/500]  lr: 1.9743e-02  eta: 0:00:43  time: 0.2516  '
            'data_time: 0.0093  loss: 0.2011  decode.loss_ce: 0.1310')
    assert progress_line(line.format(100)) == '  train 100/500  loss 0.2011'
    assert progress_line(line.format(500)) == '  train 500/500  loss 0.2011'
    assert progress_line(line.format(330)) is None
    assert progress_line(PREFIX + 'Epoch(train)  [1][10/32]  lr: 0.1  loss: 1.5') is None


def test_validation_and_test_show_their_metrics():
    val = PREFIX + 'Iter(val) [5/5]    aAcc: 97.8200  mIoU: 85.9200  mAcc: 90.7900  time: 0.15'
    assert progress_line(val) == '  val  aAcc 97.82  mIoU 85.92  mAcc 90.79'
    assert progress_line(PREFIX + 'Iter(val) [5/5]    eta: 0:00:00  time: 0.2469') is None
    test = PREFIX + 'Epoch(test) [40/40]    accuracy/top1: 86.0000  data_time: 0.01'
    assert progress_line(test) == '  test  accuracy/top1 86.00'
    for noise in ('/x/mmseg/models/builder.py:36: UserWarning: ``build_loss`` would be deprecated',
                  PREFIX + 'Hooks will be executed in the following order:',
                  '| background |  97.5 | 99.01 |'):
        assert progress_line(noise) is None


def test_conversion_shows_its_summary_lines():
    assert conversion_line('  blocks fused      : 22\n') == '  blocks fused      : 22'
    assert conversion_line('  max rel diff      : 3.1e-07 (tolerance 0.0001)\n')
    assert conversion_line('  untouched tensors : 34 bit-identical\n') is None
