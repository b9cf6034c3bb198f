"""インターネット接続系 preset: NPO, こども食堂 and CSW lists (kana only, partial birth dates, CSV or Excel).

The default policy forwards the least: no attributes, only encodings and sealed identities.
"""
