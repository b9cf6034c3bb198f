"""マイナンバー利用事務系 preset: 住民記録 (with 転入・転出 and the other municipality's code, 児童扶養手当, 生活保護, 障害福祉) and 母子保健.

This segment is closed: the agent writes bundles (``--bundle-out``) that cross
on approved removable media. 個人番号 is never read, encoded or sent.
"""
